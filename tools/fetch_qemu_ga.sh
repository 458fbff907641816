#!/bin/bash
# Fetch an old qemu-ga (Debian bullseye's qemu-guest-agent 5.2) for the
# version matrix, without changing the system: no apt source is added, no
# package is installed.
#
# apt-get runs with a private source list (bullseye main only) and private
# list and cache directories, downloads the two .deb files the agent needs
# (qemu-guest-agent and liburing1: `ldd` of the 5.2 binary lists liburing.so.1
# as the one library Debian 12 lacks; libudev, libglib-2.0, libgmodule-2.0,
# libpcre2-8, libm, libpthread and libc come from Debian 12 itself), and
# unpacks them with `dpkg-deb -x`.  The result:
#
#     $CACHE/qemu-ga-5.2/bin/qemu-ga     a wrapper that sets LD_LIBRARY_PATH
#     $CACHE/qemu-ga-5.2/root/...        the unpacked packages
#     $CACHE/qemu-ga-5.2/VERSION         what `qemu-ga --version` said
#
# Cached: a second run only checks that the wrapper still answers --version.
# Fails loudly (exit 1, apt's output on stderr) when it cannot fetch.
# Prints the wrapper's path on stdout.
#
# Environment: QGA_CACHE (default /var/cache/qga-monitor).
set -euo pipefail

CACHE=${QGA_CACHE:-/var/cache/qga-monitor}
DEST=$CACHE/qemu-ga-5.2
SUITE=bullseye
MIRROR=http://deb.debian.org/debian
PACKAGES=("qemu-guest-agent/$SUITE" "liburing1/$SUITE")
WANT='QEMU Guest Agent 5.2'

if [ -x "$DEST/bin/qemu-ga" ] && "$DEST/bin/qemu-ga" --version 2>/dev/null | grep -q "$WANT"; then
    echo "$DEST/bin/qemu-ga"
    exit 0
fi

mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/.fetch.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/debs" "$WORK/out/bin"
echo "deb $MIRROR $SUITE main" > "$WORK/sources.list"
APT=(-o "Dir::Etc::sourcelist=$WORK/sources.list" -o "Dir::Etc::sourceparts=-"
     -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache=$WORK/cache"
     -o "APT::Sandbox::User=root" -q)

if ! apt-get "${APT[@]}" update >"$WORK/apt.log" 2>&1 \
        || ! (cd "$WORK/debs" && apt-get "${APT[@]}" download "${PACKAGES[@]}") \
            >>"$WORK/apt.log" 2>&1; then
    echo "fetch_qemu_ga: cannot download ${PACKAGES[*]} from $MIRROR $SUITE:" >&2
    cat "$WORK/apt.log" >&2
    exit 1
fi
for deb in "$WORK"/debs/*.deb; do
    dpkg-deb -x "$deb" "$WORK/out/root"
done
cat > "$WORK/out/bin/qemu-ga" <<EOF
#!/bin/sh
# qemu-ga 5.2 from Debian $SUITE, with its liburing1 (tools/fetch_qemu_ga.sh)
LD_LIBRARY_PATH=$DEST/root/usr/lib/x86_64-linux-gnu exec $DEST/root/usr/sbin/qemu-ga "\$@"
EOF
chmod 0755 "$WORK/out/bin/qemu-ga"
rm -rf "$DEST"
mv "$WORK/out" "$DEST"
if ! version=$("$DEST/bin/qemu-ga" --version 2>&1) || [[ "$version" != *"$WANT"* ]]; then
    echo "fetch_qemu_ga: $DEST/bin/qemu-ga does not run: $version" >&2
    LD_LIBRARY_PATH=$DEST/root/usr/lib/x86_64-linux-gnu ldd "$DEST/root/usr/sbin/qemu-ga" >&2 || true
    exit 1
fi
echo "$version" > "$DEST/VERSION"
echo "$DEST/bin/qemu-ga"
