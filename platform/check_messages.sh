#!/bin/sh
# make lint-messages: every string marked for translation is in every catalogue, translated,
# not fuzzy, with the same placeholders. Usage: check_messages.sh "<makemessages command>" PO...
# makemessages rewrites the catalogues in place; when all it changed is the header's
# POT-Creation-Date, the files are put back as they were (a clean tree stays clean).
set -eu
makemessages="$1"
shift
saved=$(mktemp -d)
trap 'rm -rf "$saved"' EXIT
for po in "$@"; do
    mkdir -p "$saved/$(dirname "$po")"
    cp "$po" "$saved/$po"
done
sh -c "$makemessages" >/dev/null
failed=0
for po in "$@"; do
    if ! msgfmt --check --output-file=/dev/null "$po"; then
        failed=1
    fi
    untranslated=$(msgattrib --untranslated --no-obsolete --no-wrap "$po")
    fuzzy=$(msgattrib --only-fuzzy --no-obsolete --no-wrap "$po")
    if [ -n "$untranslated" ] || [ -n "$fuzzy" ]; then
        echo "$po: strings left untranslated or fuzzy (translate them, remove '#, fuzzy'):" >&2
        printf '%s\n%s\n' "$untranslated" "$fuzzy" | grep "^msgid \"." >&2 || true
        failed=1
    fi
    if diff -q -I '^"POT-Creation-Date: ' "$saved/$po" "$po" >/dev/null; then
        cp "$saved/$po" "$po"
    else
        echo "$po: updated by makemessages (commit the change)" >&2
        failed=1
    fi
done
exit $failed
