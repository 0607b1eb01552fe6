#!/bin/sh
# make fuzz: run every fuzz target of the module for FUZZTIME each (default 30s), one after another. The inputs the
# fuzzer found interesting are kept in the package's testdata/fuzz/<Target>/ (commit them: `make test` then runs
# them as seeds); an input that fails is written there by go test itself, and the script exits non-zero.
set -eu
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
cd "$(dirname "$0")/.."
cache="$("$GO" env GOCACHE)/fuzz"
failed=""
for file in $(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do
	dir=$(dirname "$file")
	pkg=$("$GO" list "$dir")
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(f \*testing\.F).*/\1/p' "$file"); do
		echo "== $pkg $target ($FUZZTIME)"
		if ! "$GO" test -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" "$dir"; then
			failed="$failed $pkg.$target"
		fi
		if [ -d "$cache/$pkg/$target" ]; then
			mkdir -p "$dir/testdata/fuzz/$target"
			for c in "$cache/$pkg/$target"/*; do
				[ -e "$dir/testdata/fuzz/$target/$(basename "$c")" ] || cp "$c" "$dir/testdata/fuzz/$target/"
			done
		fi
	done
done
if [ -n "$failed" ]; then
	echo "fuzz: failed:$failed (the failing inputs are in testdata/fuzz)" >&2
	exit 1
fi
echo "fuzz: every target ran $FUZZTIME without a failure"
