#!/usr/bin/env bash
# docs_standalone.sh — the repository's documentation stands alone: a clone
# has nothing outside it, so README.md and docs/ may neither cite files that
# live beside the repository (a product description, a shared folder) nor link
# to a file of the repository that does not exist.
set -u
cd "$(dirname "$0")/../.."
status=0

outside=$(grep -n -E 'PRODUCT(\.md)?[ ]*§|PRODUCT\.md|\.\./shared|shared/testdata' README.md docs/*.md docs/*.yaml 2>/dev/null)
if [ -n "$outside" ]; then
    echo "docs cite files outside the repository:" >&2
    echo "$outside" >&2
    status=1
fi

# Relative Markdown links [text](path#anchor): the path must exist.
for f in README.md docs/*.md; do
    dir=$(dirname "$f")
    while IFS= read -r target; do
        path=${target%%#*}
        [ -z "$path" ] && continue
        case "$path" in http://* | https://* | mailto:*) continue ;; esac
        if [ ! -e "$dir/$path" ]; then
            echo "$f: link to a missing file: $target" >&2
            status=1
        fi
    done < <(grep -o -E '\]\([^) ]+\)' "$f" | sed -E 's/^\]\((.*)\)$/\1/')
done

[ "$status" -eq 0 ] && echo "docs: README.md and docs/ stand alone"
exit "$status"
