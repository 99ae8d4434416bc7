"""The OpenAI-compatible HTTP listener: the interface most applications already speak (the
``openai`` SDK, LangChain, LlamaIndex), translated to the same transport-free data plane the gRPC
servicer uses, so requests, events, feedback and metrics are the same whichever way a call came in.

- :mod:`.schemas`: the request bodies (pydantic; bounded; unsupported options refused by name);
- :mod:`.errors`: the one domain error → HTTP status + OpenAI-shaped error body mapping;
- :mod:`.routes`: the handlers (FastAPI): translation only, like ``servicer.py`` for gRPC;
- :mod:`.server`: uvicorn embedded in the service's own event loop, on its own port.
"""
