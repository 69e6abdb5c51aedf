# syntax=docker/dockerfile:1
# The groupchat operator image: `groupchat operator`, watching GroupChatClusters.
# Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t groupchat-operator:0.1.0 .

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
RUN groupadd --gid 10001 groupchat \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin groupchat
WORKDIR /app
COPY --from=build --chown=root:root /src/package.json ./
COPY --from=build --chown=root:root /src/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist ./dist
# Nothing is written but /tmp (an emptyDir in the chart): fit for a read-only root.
USER 10001:10001
VOLUME ["/tmp"]
EXPOSE 8080
ENTRYPOINT ["node", "/app/dist/workloads/cli/main.js"]
CMD ["operator", "--host", "0.0.0.0"]
