#!/usr/bin/env bash
# Cross-builds the kernel crate's tests for aarch64 with Debian's rustc (1.63) and runs them under
# qemu-aarch64 twice: cpu "max" (NEON + dot-product extension: the neon+dotprod table) and
# cortex-a53 (base NEON only: the neon table). Every table is checked bit for bit against the
# scalar reference. Installs the Debian packages it needs when missing (root, apt).
# Linked statically: dynamically linked binaries under qemu-user hang in thread start-up.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=()
command -v aarch64-linux-gnu-gcc >/dev/null || pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || pkgs+=(qemu-user)
[ -x /usr/bin/rustc ] || pkgs+=(rustc)
[ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu/lib ] || pkgs+=(libstd-rust-dev:arm64)
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "installing: ${pkgs[*]}"
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

out=kernels/target/aarch64
mkdir -p "$out"
# rustc directly (not Debian's old cargo, which cannot read this Cargo.lock); the crate has no
# dependencies and build.rs only enables x86 features, so nothing is lost.
/usr/bin/rustc --edition 2018 --crate-name bonsai_kernels --test -C opt-level=3 \
  --target aarch64-unknown-linux-gnu -C linker=aarch64-linux-gnu-gcc -C target-feature=+crt-static \
  -A warnings kernels/src/lib.rs -o "$out/bk_tests"

status=0
for cpu in max cortex-a53; do
  echo "== qemu-aarch64 -cpu $cpu"
  qemu-aarch64 -cpu "$cpu" "$out/bk_tests" --test-threads 2 || status=1
done
exit $status
