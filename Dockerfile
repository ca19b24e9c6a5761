# Aurore Events: the service on the official Bun image.
#   docker build -t aurore-events .
#   docker run -e API_KEYS=... -p 3000:3000 -v aurore-data:/data aurore-events     (embedded engine)
#   docker run -e API_KEYS=... -e DATABASE_URL=postgres://... -p 3000:3000 aurore-events
# The image listens on 0.0.0.0, so it refuses to start without API_KEYS (or ALLOW_UNAUTHENTICATED=true).

# --- dependencies: production only (no bun-from-npm, no typescript, no @types) -------------------
FROM oven/bun:1.4.5 AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# patch-package applies these on install (postgres.js: a refused COPY must settle, see README).
COPY patches ./patches
RUN bun install --production --no-save

# --- runtime ------------------------------------------------------------------------------------
FROM oven/bun:1.4.5-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
# The writer threads load workers/ at run time, and the migrations are read from sql/.
COPY src ./src
COPY workers ./workers
COPY sql ./sql
# The image's unprivileged user owns only the data directory; the code stays read-only to it.
RUN mkdir -p /data && chown bun:bun /data && chmod 700 /data
USER bun
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["bun", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Exec form: bun runs as PID 1 and receives SIGTERM itself, so the queue is written before exit.
CMD ["bun", "src/main.ts"]
