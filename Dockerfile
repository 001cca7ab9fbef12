# The runner and trainer in one image, installed the way the README installs them: the project
# with its `trainer` extra, torch pinned by constraints.txt.
# GPU: run with --gpus all on a host with the NVIDIA container toolkit.
FROM python:3.11-slim
ENV NO_ALBUMENTATIONS_UPDATE=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY contract ./contract
COPY runner ./runner
COPY trainer ./trainer
COPY jobs ./jobs
RUN pip install -c constraints.txt ".[trainer]"
ENTRYPOINT ["runner"]
CMD ["--help"]
