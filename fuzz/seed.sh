#!/usr/bin/env bash
# Seeds the fuzz corpora (fuzz/corpus/<target>, which cargo fuzz run reads and grows) from
# the repository: the guests' TOML configs for `config`, and the guest images that
# crates/axvm-guests builds (run `cargo test --workspace` or `cargo build -p axvm-guests`
# first) for `boot_image`, each under both configs and once with a ramdisk. Idempotent.
set -euo pipefail
cd "$(dirname "$0")"

mkdir -p corpus/config corpus/boot_image
for toml in ../guests/*/*.toml; do
  case $toml in */.cargo/*|*/Cargo.toml) continue ;; esac
  cp "$toml" "corpus/config/seed-$(basename "$toml")"
done

images=$(find ../target -path '*/axvm-guests-*/out/images' -type d 2>/dev/null | head -n 1)
if [ -z "$images" ]; then
  echo "fuzz/seed.sh: no guest images under target/ (build axvm-guests first); boot_image starts from nothing" >&2
  exit 0
fi
ramdisk=$images/ramdisk
for image in "$images"/*; do
  name=$(basename "$image")
  [ "$name" = ramdisk ] && continue
  { printf '\0\0\0'; cat "$image"; } >"corpus/boot_image/seed-$name"
  { printf '\1\0\0'; cat "$image"; } >"corpus/boot_image/seed-$name-placed"
  size=$(stat -c %s "$image")
  if [ -f "$ramdisk" ] && [ "$size" -lt 65536 ]; then
    { printf '\3'; printf "\\x$(printf %02x $((size & 255)))\\x$(printf %02x $((size >> 8)))"
      cat "$image" "$ramdisk"; } >"corpus/boot_image/seed-$name-ramdisk"
  fi
done
