# The worker image (also runs the one-shot Temporal set-up (search attributes, reaper schedule) in docker-compose).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY tsconfig.json ./
COPY activities ./activities
COPY domain ./domain
COPY workflows ./workflows
COPY workers ./workers
COPY scripts/setup-temporal.ts ./scripts/
USER node
CMD ["node", "--import", "tsx", "workers/main.ts"]
