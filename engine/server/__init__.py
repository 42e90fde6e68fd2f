"""`d2sd serve`: a local OpenAI-compatible server, so every tool that speaks that API gets the engine.

bind.py: where it may listen; requests.py: the request bodies; generation.py: the one thread that runs the
target, with its bounded queue; app.py: the HTTP API (FastAPI); serve.py: uvicorn on a bound port."""
