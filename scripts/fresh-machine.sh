#!/usr/bin/env bash
# Runs the README's two commands in a fresh Debian 12 container that has only the README's needs,
# and prints their cold wall times: how issue 12 ("passed in CI, failed on a fresh machine") is
# checked before an issue is resolved.
#
# The container is a root file system made by debootstrap from
# Debian's packages (bookworm, the project's machine kind) with only: Debian's python3 and
# python3-pip (no numpy, no python3-venv), git, gcc, make; Rust 1.95 through rustup, copied from this
# machine's stable toolchain (no toolchain can be downloaded here) with the wasm32 target removed;
# Node.js 20 with npm, copied from this machine's nodejs package (the machine image's). The
# repository is a fresh clone of HEAD: committed work only. Caches start empty. It runs under
# `unshare` (own mount and process namespaces) + `chroot` with an empty environment; podman was
# the first choice, but its runtime (crun) cannot set rlimits or cgroups inside this workplace's
# sandbox, and a chroot of a debootstrapped system is the same clean file system.
#
# Usage (root): scripts/fresh-machine.sh [WORK_DIR]   (default /var/tmp/kokoro-fresh)
# Output: WORK_DIR/log (both commands' output) and the wall times at the end.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-/var/tmp/kokoro-fresh}"
base="$work/base"
root="$work/root"
[ "$(id -u)" = 0 ] || { echo "fresh-machine: run as root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }

# The README's needs, from Debian's packages; a base made with another list is made again.
packages=ca-certificates,git,gcc,make,libc6-dev,python3,python3-pip,util-linux,procps,xz-utils
if [ "$(cat "$base/.complete" 2>/dev/null)" != "$packages" ]; then
  rm -rf "$base"
  mkdir -p "$work"
  debootstrap --variant=minbase --include="$packages" bookworm "$base" http://deb.debian.org/debian
  echo "$packages" > "$base/.complete"
fi
rm -rf "$root"
cp -a "$base" "$root"
rm "$root/.complete"
# The same Debian sources as this machine (security updates carry the current chromium).
rm -f "$root/etc/apt/sources.list"
cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# This workplace's network: its egress CA and the client settings that name it (they are the
# machine's, not the project's; CI runs with them too).
cp -a /etc/ssl/certs/. "$root/etc/ssl/certs/"
[ ! -d /usr/local/share/ca-certificates ] || cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
[ ! -f /etc/pip.conf ] || cp /etc/pip.conf "$root/etc/pip.conf"
[ ! -f "$HOME/.npmrc" ] || cp "$HOME/.npmrc" "$root/root/.npmrc"
network_env=()
for v in SSL_CERT_FILE SSL_CERT_DIR NODE_EXTRA_CA_CERTS GIT_SSL_CAINFO CURL_CA_BUNDLE PIP_CERT REQUESTS_CA_BUNDLE; do
  [ -z "${!v:-}" ] || network_env+=("$v=${!v}")
done

# Rust 1.95 through rustup.
toolchain="$(rustup show active-toolchain | cut -d' ' -f1)"
mkdir -p "$root/root/.rustup/toolchains" "$root/root/.cargo/bin"
cp -a "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$toolchain" "$root/root/.rustup/toolchains/"
cp "${RUSTUP_HOME:-$HOME/.rustup}/settings.toml" "$root/root/.rustup/"
cp "$(command -v rustup)" "$root/root/.cargo/bin/rustup"
for proxy in cargo rustc rustdoc cargo-clippy cargo-fmt rustfmt clippy-driver; do
  ln -sf rustup "$root/root/.cargo/bin/$proxy"
done
# Node.js with npm, as installed here (the image's nodejs package; npm as upgraded at its start).
cp -a "$(readlink -f "$(command -v node)")" "$root/usr/bin/node"
mkdir -p "$root/usr/lib/node_modules"
cp -a "$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")" "$root/usr/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/bin/npx"

git clone -q "$repo" "$root/root/kokoro-burn"

cat > "$root/root/run.sh" <<'IN'
#!/usr/bin/env bash
set -uo pipefail
export PATH="/root/.cargo/bin:$PATH" HOME=/root
cd /root/kokoro-burn
rustup target remove wasm32-unknown-unknown 2>/dev/null || true
echo "== needs: $(cargo --version); $(python3 --version); node $(node --version); npm $(npm --version)"
python3 -c 'import numpy' 2>/dev/null && echo "numpy present?" || echo "== no numpy (as on a fresh machine)"
# The suite first (its cold time is what CI's 90 minutes bound), then the README's main command.
start=$(date +%s)
./scripts/test.sh
suite=$?
mid=$(date +%s)
echo "== test suite:   exit $suite, $((mid - start)) s cold"
cargo run --release -p kokoro-cli -- say "Hello world! The train leaves at 10:30." --voice af_heart --out hello.wav
main=$?
end=$(date +%s)
echo "== main command: exit $main, $((end - mid)) s (its own release build; weights already fetched by the suite)"
exit $((main || suite))
IN
chmod +x "$root/root/run.sh"
# FRESH_PREPARE_ONLY=1: make the file system, run nothing (to try single steps in it by hand).
[ -z "${FRESH_PREPARE_ONLY:-}" ] || { echo "fresh-machine: prepared $root"; exit 0; }
echo "fresh-machine: running in $root (log: $work/log)"
unshare --mount --pid --fork --mount-proc="$root/proc" bash -c "
  mount --rbind /dev '$root/dev' && mount -t tmpfs tmpfs '$root/tmp' && mount -t sysfs sysfs '$root/sys' &&
  chroot '$root' /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb ${network_env[*]} /root/run.sh" \
  2>&1 | tee "$work/log"
