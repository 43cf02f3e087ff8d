# rise-serve. CPU image (default) with the shipped model:
#   docker build -t rise-serve .
# GPU image on the official vLLM image (serves with --engine vllm):
#   docker build --build-arg BASE=vllm/vllm-openai:latest --build-arg EXTRA=gpu -t rise-serve:gpu .
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG EXTRA=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 RISE_HOST=0.0.0.0 RISE_PORT=8000
WORKDIR /app
COPY pyproject.toml README.md ./
COPY app ./app
COPY models ./models
RUN if [ -z "$EXTRA" ]; then pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" || pip install "torch==2.13.0"; fi \
 && pip install ".${EXTRA:+[$EXTRA]}" \
 && useradd --create-home --uid 10001 rise
USER rise
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status == 200 else 1)"
ENTRYPOINT ["rise", "serve"]
