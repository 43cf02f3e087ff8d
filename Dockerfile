# rise-serve. CPU image (default) with the shipped model:
#   make image            (podman or docker, whichever is installed), or: docker build -t rise-serve .
#   docker run -p 8000:8000 rise-serve
# GPU image on the official vLLM image (serves with --engine vllm):
#   docker build --build-arg BASE=vllm/vllm-openai:latest --build-arg EXTRA=gpu -t rise-serve:gpu .
# The shipped models are installed with the package (<prefix>/share/rise-serve/models), where
# `rise serve` finds them from any directory; to serve another model, mount it and set RISE_MODEL.
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG EXTRA=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 RISE_HOST=0.0.0.0 RISE_PORT=8000
COPY pyproject.toml README.md /tmp/src/
COPY app /tmp/src/app
COPY models /tmp/src/models
RUN if [ -z "$EXTRA" ]; then pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" || pip install "torch==2.13.0"; fi \
 && pip install "/tmp/src${EXTRA:+[$EXTRA]}" \
 && rm -rf /tmp/src \
 && cd / && python -c "import sys; from app.config import default_model, model_problem; sys.exit(model_problem(default_model()))" \
 && useradd --create-home --uid 10001 rise
USER rise
WORKDIR /home/rise
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status == 200 else 1)"
ENTRYPOINT ["rise", "serve"]
