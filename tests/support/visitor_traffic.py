"""Refused API traffic from visitors, sent from its own process so the app's memory is measured without the
client's: 40 texts of 5 MB (refused by the size guard) and 1000 empty texts (refused by the handler) from 4
threads, each thread with its own connection. Exits non-zero if any call is not refused with its sentence.

    python tests/support/visitor_traffic.py http://127.0.0.1:7860/
"""

from __future__ import annotations

import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

JSON = {"content-type": "application/json"}


def main(url: str) -> int:
    big = json.dumps({"data": ["x" * (5 * 2**20), "", "OpenVINO"]}).encode()
    with httpx.Client(timeout=60) as http:
        for _ in range(40):
            refused = http.post(f"{url}gradio_api/call/classify", content=big, headers=JSON)
            if refused.status_code != 413 or "shorter text" not in refused.json()["detail"]:
                print(f"a 5 MB text was not refused: {refused.status_code} {refused.text[:200]}")
                return 1

    local = threading.local()
    empty = json.dumps({"data": ["", "", "OpenVINO"]})

    def refused_empty(_: int) -> bool:
        if not hasattr(local, "http"):
            local.http = httpx.Client(timeout=120)
        started = local.http.post(f"{url}gradio_api/call/classify", content=empty, headers=JSON)
        stream = local.http.get(f"{url}gradio_api/call/classify/{started.json()['event_id']}").text
        return "event: error" in stream and "The text is empty" in stream

    with ThreadPoolExecutor(4) as pool:
        answered = list(pool.map(refused_empty, range(1000)))
    if not all(answered):
        print(f"{answered.count(False)} of 1000 empty texts did not get the sentence")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
