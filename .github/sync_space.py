"""Upload this repository to a Hugging Face Space (run by the CI workflow on main).

HF_TOKEN=... HF_SPACE=user/space-name python .github/sync_space.py
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import HfApi

IGNORE = [".git/*", ".venv/*", "artifacts/*", "**/__pycache__/*", ".pytest_cache/*", ".ruff_cache/*"]


def main() -> None:
    space = os.environ["HF_SPACE"]
    api = HfApi(token=os.environ["HF_TOKEN"])
    api.create_repo(space, repo_type="space", space_sdk="gradio", exist_ok=True)
    api.upload_folder(
        repo_id=space,
        repo_type="space",
        folder_path=Path(__file__).resolve().parent.parent,
        ignore_patterns=IGNORE,
        delete_patterns=["*"],  # files the Space has that this checkout no longer has (moved modules) go
        commit_message=f"Sync from {os.environ.get('GITHUB_SHA', 'local checkout')[:12]}",
    )


if __name__ == "__main__":
    main()
