# shellcheck shell=bash
# Sourced by deploy/*.sh, tests/run.sh and tests/fleet/lab.sh: this machine's Debian package
# sources, and installing what a script needs from them.

# The Debian archive this machine's apt already uses (so no host is named here).
debian_uri() {
    local uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ {u = $2} /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == "bookworm") {print u; exit}}' \
            /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || { echo "no Debian bookworm source in this machine's apt configuration" >&2; exit 1; }
    echo "$uri"
}


# unpack_trixie_dockerd DIR: Debian 13's dockerd (engine 26.1), downloaded once into DIR/apt and
# unpacked under DIR/pkg; prints the path of its dockerd binary.
unpack_trixie_dockerd() {
    local pkg=$1/pkg apt=$1/apt
    if [ ! -x "$pkg/usr/sbin/dockerd" ]; then
        echo "fetching Debian 13's docker.io into $pkg" >&2
        mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$pkg"
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_uri) trixie main" \
            >"$apt/sources.list"
        local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache::Archives=$apt/archives" -o Debug::NoLocking=1
            -o APT::Sandbox::User=root)
        apt-get "${opts[@]}" -q update >/dev/null
        (cd "$apt" && apt-get "${opts[@]}" -q download docker.io >/dev/null)
        dpkg -x "$apt"/docker.io_*.deb "$pkg"
        rm -f "$apt"/docker.io_*.deb
    fi
    echo "$pkg/usr/sbin/dockerd"
}

# ensure_packages SPEC...: install what is missing, as root with apt-get. A SPEC is a package
# (missing when dpkg does not know it) or COMMAND=PACKAGE (missing when COMMAND is not on PATH,
# so an engine installed another way is used as it is).
ensure_packages() {
    local missing=() spec
    for spec in "$@"; do
        if [[ $spec == *=* ]]; then
            command -v "${spec%%=*}" >/dev/null 2>&1 || missing+=("${spec#*=}")
        else
            dpkg -s "$spec" >/dev/null 2>&1 || missing+=("$spec")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "missing ${missing[*]} and cannot install them (needs root and apt-get)" >&2
        return 1
    fi
    echo "installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}
