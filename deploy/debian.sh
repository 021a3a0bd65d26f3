# shellcheck shell=bash
# Sourced by deploy/*.sh: facts about this machine's Debian package sources.

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

