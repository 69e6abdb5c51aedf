# syntax=docker/dockerfile:1
# The groupchat workload image: every role runs it, with the role as its first
# argument (`broker`, `gateway`, ...), configured through GROUPCHAT_* variables.
# Build from the repository root:
#   docker build -f docker/workload.Dockerfile -t groupchat:0.1.0 .

FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN node scripts/build.mjs \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf dist/test

FROM node:24-slim
ENV NODE_ENV=production
# A fixed non-root uid the pod spec can name (runAsUser 10001).
RUN groupadd --gid 10001 groupchat \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin groupchat \
 && mkdir -p /var/lib/groupchat && chown 10001:10001 /var/lib/groupchat
WORKDIR /app
COPY --from=build --chown=root:root /src/package.json ./
COPY --from=build --chown=root:root /src/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist ./dist
# Owned by root and read-only to the process: the root file system can be
# mounted read-only. Writes go to /tmp (an emptyDir) and the data volume.
USER 10001:10001
VOLUME ["/tmp", "/var/lib/groupchat"]
EXPOSE 7000 8080 8081
ENTRYPOINT ["node", "/app/dist/workloads/cli/main.js"]
CMD ["--help"]
