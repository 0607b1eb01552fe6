#!/bin/sh
# Build dist/portmirror_<version>_<arch>.deb with dpkg-deb (see packaging/README.md).
# Usage: packaging/build-deb.sh [VERSION]   (default: 0.0~git<commit date>.<short hash>)
set -eu
GO=${GO:-go}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=${1:-}
if [ -z "$version" ]; then
	version="0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date +%Y%m%d).$(git rev-parse --short HEAD 2>/dev/null || echo local)"
fi
arch=$("$GO" env GOARCH)
case "$arch" in amd64|arm64|i386|riscv64|ppc64el|s390x) ;; 386) arch=i386 ;; *) echo "unsupported GOARCH $arch" >&2; exit 1 ;; esac

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg="$stage/pkg"
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/etc/portmirror" \
	"$pkg/usr/share/doc/portmirror" "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions"

CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o "$pkg/usr/bin/" ./cmd/portmirrord ./cmd/portmirrorctl
"$pkg/usr/bin/portmirrorctl" completion bash >"$pkg/usr/share/bash-completion/completions/portmirrorctl"
"$pkg/usr/bin/portmirrorctl" completion zsh >"$pkg/usr/share/zsh/vendor-completions/_portmirrorctl"
install -m 0644 packaging/portmirrord.service "$pkg/lib/systemd/system/portmirrord.service"
install -m 0640 packaging/portmirrord.yaml "$pkg/etc/portmirror/portmirrord.yaml"
install -m 0644 README.md docs/api.md packaging/debian/copyright "$pkg/usr/share/doc/portmirror/"
install -m 0644 packaging/debian/conffiles "$pkg/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$pkg/DEBIAN/$s"; done
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" packaging/debian/control >"$pkg/DEBIAN/control"

mkdir -p dist
out="dist/portmirror_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$out" >/dev/null
echo "$out"
