# Bulwark's image: multi-stage; the final stage holds the compiled service, production dependencies,
# their SBOM and the Node.js runtime, and runs as the unprivileged `node` user (uid 1000) on a
# read-only root filesystem. `npm run container:check` builds this file unchanged and runs it.
# No `# syntax=` line: BuildKit would resolve that frontend image, a floating tag, in the registry at
# every build (and fail offline); its built-in frontend reads everything here.

# The base, pinned to an exact Node.js release on Debian 13 (trixie): a rebuild gets the same runtime,
# and a bump is a reviewed one-line change (the container check parses this line). It is the only
# external image; every stage starts from it.
FROM node:24.22.3-trixie-slim AS base
WORKDIR /app

# Compile TypeScript; only dist/ leaves this stage. The compiler needs no package's install script
# and none of the optional platform binaries (Biome, esbuild, embedded PostgreSQL: about 190 MB), so
# no dependency's code runs during the install and the stage stays small.
FROM base AS build
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --omit=optional --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json *.ts ./
COPY plugins ./plugins
COPY routes ./routes
COPY schemas ./schemas
COPY services ./services
COPY lib ./lib
COPY repositories ./repositories
RUN node_modules/.bin/tsc -p tsconfig.build.json \
    && node dist/lib/password-blocklist.js --write

# Production dependencies, and their CycloneDX SBOM read from the node_modules just installed, so the
# list shipped is the list installed. No install scripts: bcrypt, the only production package with
# one, loads the prebuilt binary it ships. npm sbom counts the uninstalled devDependencies as missing
# (ESBOMPROBLEMS), and --package-lock-only drops production packages a dev tool shares (npm/cli#7909):
# this stage's package.json loses its devDependencies first (the image copies the original). The
# folder is named after the package because npm sbom names the application after its folder. npm's
# cache is left alone: only node_modules and the SBOM leave this stage.
FROM base AS deps
WORKDIR /usr/src/bulwark
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm pkg delete devDependencies \
  && npm sbom --sbom-format cyclonedx --sbom-type application --omit=dev > sbom.cdx.json

FROM base AS runtime
# No package manager at run time: the service and its CLI need node only, and npm, npx, corepack and
# yarn (with their own bundled dependencies) are code an intruder could use and scanners would flag.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx \
  /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
# V8 sized for a service whose live heap is about 40 MiB: a young generation of at most 2 x 8 MiB (V8
# grew it to 128 MiB under load) and a 256 MiB heap limit (so garbage is collected before the old
# generation balloons). Together they took peak RSS under load from about 300 to 160 MiB at no
# measurable CPU per request (README, Benchmark). Raise the limit with NODE_OPTIONS for big heaps.
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 \
    NODE_OPTIONS="--max-semi-space-size=8 --max-old-space-size=256"
# Everything is owned by root and read-only to the `node` user, which cannot change the code it runs.
COPY --from=deps --chown=root:root /usr/src/bulwark/node_modules ./node_modules
COPY --from=deps --chown=root:root /usr/src/bulwark/sbom.cdx.json ./sbom.cdx.json
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
COPY --chown=root:root migrations ./migrations
COPY --chown=root:root sql ./sql
# Numeric, so an orchestrator can verify it is not root (Kubernetes runAsNonRoot): the base's `node`.
USER 1000:1000
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node runs as PID 1, with no init and no shell in between: the service and the CLI handle SIGTERM
# and SIGINT themselves (graceful shutdown, exit 0; a job exits 143) and start no child processes, so
# there are no zombies to reap and no signal to forward. The one gap: a SIGTERM in the first moment,
# before node has loaded the code that handles it, is dropped (PID 1) and the stop waits for SIGKILL;
# an orchestrator that minds adds an init (`docker run --init`, Compose `init: true`). Clearing the
# base's entrypoint (docker-entrypoint.sh) makes the command exactly what runs: `node dist/server.js`,
# or a one-shot job such as `node dist/cli.js migrate`.
ENTRYPOINT []
CMD ["node", "dist/server.js"]
