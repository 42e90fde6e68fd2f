"""`d2sd serve`: a local OpenAI-compatible server, so every tool that speaks that API gets the engine.

requests.py: the request bodies; generation.py: the one thread that runs the target, with its bounded
queue; app.py: the HTTP API (FastAPI); serve.py: the bind check and uvicorn."""
