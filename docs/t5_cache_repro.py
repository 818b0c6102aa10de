"""The T5 decoder and the OpenVINO model cache: export -> import of the compiled model, per part.

    python docs/t5_cache_repro.py FOLDER     # an exported t5-small IR folder (encoder + stateful decoder)

The model cache stores what `CompiledModel.export_model()` writes and loads it with
`Core.import_model()`; when the import fails, OpenVINO compiles again and rewrites the blob, so the
cache never hits. This does the two steps by hand and prints what each part does.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(folder: Path) -> None:
    import openvino as ov

    core = ov.Core()
    print(f"openvino {ov.__version__}, {core.get_property('CPU', 'FULL_DEVICE_NAME')}")
    for part in ("encoder", "decoder"):
        model = core.read_model(folder / f"openvino_{part}_model.xml")
        states = sorted({op.get_type_name() for op in model.get_ops()} & {"ReadValue", "Assign"})
        compiled = core.compile_model(model, "CPU", {})
        blob = compiled.export_model()
        try:
            core.import_model(blob, "CPU")
            outcome = "imports back"
        except RuntimeError as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            outcome = "import fails: " + " | ".join(lines[-2:])
        print(f"{part}: state ops {states or 'none'}; {outcome}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
