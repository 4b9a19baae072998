"""`fst serve`: an HTTP inference server (FastAPI + uvicorn) with a web page at `/`.

No torch here: ONNX Runtime, numpy, Pillow and the web stack only.

A stylize request, top to bottom (routes.stylize):
  1. parsing: query parameters and multipart fields through one parser (422 when wrong); a raw
     body must say it is an image (Content-Type image/* or application/octet-stream, else 415);
     cross-site form posts are refused (403).
  2. the body is read BEFORE any inference slot is taken, within --body-timeout (408) and
     --max-body (413), its bytes counted against --body-memory (503 when full): a slow or stalled
     upload holds a connection, never a worker or a queue place.
  3. admission: at most --workers jobs run and --queue more wait; beyond that 503 + Retry-After.
     A client that hangs up while waiting or running is noticed at once (499, its job skipped if
     not started).
  4. the job (decode only allow-listed formats, shrunk before the float copy; stylize; encode)
     runs on a worker thread; --timeout from admission to answer, else 504.

Shutdown (SIGTERM or Ctrl-C): new and queued requests get 503 + Retry-After, running jobs finish
within --grace seconds, then the process exits 0 (1 when work had to be cut off).

Modules: config (settings), errors (JSON errors), models (the ONNX sessions and what the API
publishes of them), admission (gate, body memory, drain), metrics (Prometheus and the access
log), parsing (parameters, body, content types), jobs (decode, stylize, encode on a worker),
routes (the endpoints), app (assembly), main (`fst serve`: uvicorn, signals, exit status).
"""
