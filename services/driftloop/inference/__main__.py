"""``python -m driftloop.inference``: run the inference service (settings from DRIFTLOOP_INFERENCE_*)."""

from __future__ import annotations

import asyncio
import logging
import sys


def main() -> None:
    from driftloop.inference.server import serve
    from driftloop.inference.settings import InferenceSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(serve(InferenceSettings())))


# vLLM starts its engine core with spawn: the guard keeps the child from re-running the server.
if __name__ == "__main__":
    main()
