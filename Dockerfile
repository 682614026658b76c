# The worker image (also runs the one-shot Temporal set-up (search attributes, reaper schedule) in docker-compose).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
# A deployed worker is always scraped: Prometheus metrics on :9464 (docs/operations.md, "Logs and metrics"); logs are JSON lines by default.
ENV METRICS_ADDRESS=0.0.0.0:9464
EXPOSE 9464
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY tsconfig.json ./
COPY activities ./activities
COPY domain ./domain
COPY workflows ./workflows
COPY workers ./workers
COPY trainer ./trainer
COPY scripts/setup-temporal.ts scripts/bundle-workflows.ts ./scripts/
# Workflow code is bundled here, at build time: the worker loads it instead of running webpack at start-up.
RUN node --import tsx scripts/bundle-workflows.ts dist/workflow-bundle.js
ENV WORKFLOW_BUNDLE=/app/dist/workflow-bundle.js
USER node
CMD ["node", "--import", "tsx", "workers/main.ts"]
