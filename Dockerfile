# The lakeless image: the `lakeless` command of every stage, as deploy/k8s/lakeless runs it.
# Build from the repository root (not built or run where it was written: no Docker there):
#   docker build -t lakeless/lakeless:0.1.0 .
# EXTRAS=train (the default) adds Keras/TensorFlow for `lakeless train` (the train CronJob);
# --build-arg EXTRAS= builds a smaller image without them for the other stages.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ARG EXTRAS=train
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LAKELESS_DATA_DIR=/var/lib/lakeless
COPY --from=wheel /wheels /wheels
RUN wheel="$(ls /wheels/lakeless-*.whl)" \
    && pip install "${wheel}${EXTRAS:+[$EXTRAS]}" \
    && rm -rf /wheels \
    && useradd --uid 10001 --home-dir /home/lakeless --create-home lakeless \
    && mkdir -p /var/lib/lakeless && chown lakeless /var/lib/lakeless
# Numeric, so that Kubernetes can verify runAsNonRoot.
USER 10001
WORKDIR /var/lib/lakeless
ENTRYPOINT ["lakeless"]
CMD ["--help"]
