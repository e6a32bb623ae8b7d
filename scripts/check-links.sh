#!/usr/bin/env bash
# Checks that every relative link and image in the repository's Markdown files points at a
# file or directory of the repository, so that the documentation works for anyone who clones
# it. Reads files only: no network, no build, one pass over the Markdown (a few seconds).
#
#   scripts/check-links.sh            # check; exit 1 and print file:line for each bad link
#   scripts/check-links.sh -q         # the same, without the list of external links
#
# What is checked:
# - Files: every *.md that git tracks, plus new ones not yet added (untracked and not
#   ignored), except under target/ and fuzz's generated directories (fuzz/corpus,
#   fuzz/artifacts, fuzz/target). Without git, every *.md outside those directories.
# - Links: inline links and images `[text](target)` / `![alt](target)`, reference
#   definitions `[label]: target`, HTML `href="..."` and `src="..."`. Fenced code blocks
#   and `inline code` are skipped.
# - A relative target must resolve, from the linking file's directory, to a file or
#   directory in the repository (tracked, or new and not ignored): a file that exists only
#   locally (ignored build output) is reported too.
# - Anchors (`file.md#section`, `#section`) into Markdown files are checked against the
#   target's headings and explicit `<a name>`/`id` anchors. The comparison keeps only
#   letters a-z and digits of both sides (so GitHub's `-1`, `-2` suffixes for repeated
#   headings match, and punctuation is not compared); anchors into other files (`#L10`)
#   are not checked.
# - Bad whatever the rest says: a target that leaves the repository (`../` past its root,
#   an absolute path, `file:`), and any link or text that mentions `../shared` or
#   `/work/shared`, a directory beside the repository that nobody who clones it has.
# - http(s) and mailto links are allowed and not fetched; they are listed at the end.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

quiet=0
case "${1:-}" in
    -q) quiet=1 ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) echo "check-links.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

skip_path() {
    case "$1" in
        target/* | */target/* | fuzz/corpus/* | fuzz/artifacts/* | fuzz/target/*) return 0 ;;
    esac
    return 1
}

# The repository's files and directories, and its Markdown files.
declare -A known=(["."]=1)
md_files=()
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    list_files() { git ls-files -z --cached --others --exclude-standard; }
else
    list_files() { find . -path ./.git -prune -o -type f -printf '%P\0'; }
fi
while IFS= read -r -d '' f; do
    [[ -e "$f" ]] || continue # deleted in the working tree, not yet in the index
    known["$f"]=1
    d="$f"
    while [[ "$d" == */* ]]; do
        d="${d%/*}"
        [[ -n "${known["$d"]:-}" ]] && break
        known["$d"]=1
    done
    if [[ "$f" == *.md ]] && ! skip_path "$f"; then
        md_files+=("$f")
    fi
done < <(list_files)

if ((${#md_files[@]} == 0)); then
    echo "check-links.sh: no Markdown files found" >&2
    exit 2
fi

# One awk pass over every Markdown file prints, tab-separated:
#   H  file  slug            a heading or explicit anchor (slug: a-z and 0-9 only)
#   L  file  line  target    a link or image target
#   M  file  line  text      a line that mentions the directory beside the repository
extract='
function slug(s) { s = tolower(s); gsub(/[^a-z0-9]/, "", s); return s }
function emit_link(t) { if (t != "") print "L\t" FILENAME "\t" FNR "\t" t }
# The target that starts at s (just after "(" ), up to the closing parenthesis.
function target_at(s,    i, c, depth, out) {
    sub(/^[ \t]+/, "", s)
    if (substr(s, 1, 1) == "<") { i = index(s, ">"); return i ? substr(s, 2, i - 2) : "" }
    depth = 0; out = ""
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "(") depth++
        else if (c == ")") { if (depth == 0) break; depth-- }
        else if (c == " " || c == "\t") break
        out = out c
    }
    return out
}
FNR == 1 { fence = ""; split("", seen) }
$0 ~ /\.\.\/shared|\/work\/shared/ { print "M\t" FILENAME "\t" FNR "\t" $0 }
{
    line = $0
    if (fence != "") { if (line ~ ("^[ ]*" fence)) fence = ""; next }
    if (match(line, /^[ ]*(```|~~~)/)) { fence = substr(line, RSTART + RLENGTH - 3, 3); next }
    gsub(/``[^`]*``/, "", line)
    gsub(/`[^`]*`/, "", line)
    if (line ~ /^#+[ \t]/) {
        h = line; sub(/^#+[ \t]+/, "", h); sub(/[ \t]#+[ \t]*$/, "", h)
        gsub(/\]\([^)]*\)/, "", h)
        s = slug(h)
        n = seen[s]++
        print "H\t" FILENAME "\t" (n ? s n : s)
    }
    rest = line
    while (match(rest, /(name|id)="[^"]*"/)) {
        a = substr(rest, RSTART, RLENGTH); sub(/^[a-z]+="/, "", a); sub(/"$/, "", a)
        print "H\t" FILENAME "\t" slug(a)
        rest = substr(rest, RSTART + RLENGTH)
    }
    if (match(line, /^ {0,3}\[[^]]+\]:[ \t]+/)) {
        t = substr(line, RSTART + RLENGTH); sub(/[ \t].*$/, "", t); gsub(/^<|>$/, "", t)
        emit_link(t)
    }
    rest = line
    while ((i = index(rest, "](")) > 0) {
        rest = substr(rest, i + 2)
        emit_link(target_at(rest))
    }
    rest = line
    while (match(rest, /(href|src)="[^"]*"/)) {
        t = substr(rest, RSTART, RLENGTH); sub(/^[a-z]+="/, "", t); sub(/"$/, "", t)
        emit_link(t)
        rest = substr(rest, RSTART + RLENGTH)
    }
    rest = line
    while (match(rest, /<https?:[^ >]*>/)) {
        emit_link(substr(rest, RSTART + 1, RLENGTH - 2))
        rest = substr(rest, RSTART + RLENGTH)
    }
}
'

records=$(awk -F '\t' "$extract" "${md_files[@]}") || { echo "check-links.sh: awk failed" >&2; exit 2; }

declare -A anchors=() shared_seen=()
mentions=()
bad=()
external=()
links=0

# Resolves a path relative to the repository root, with "." and ".." segments removed,
# into REPLY; fails when it climbs above the root.
normalize() {
    local IFS=/ part
    local -a parts out=()
    read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        case "$part" in
            "" | .) ;;
            ..) ((${#out[@]})) || return 1; unset 'out[${#out[@]}-1]' ;;
            *) out+=("$part") ;;
        esac
    done
    REPLY="${out[*]}"
    [[ -n "$REPLY" ]] || REPLY=.
}

while IFS=$'\t' read -r kind file a b; do
    [[ "$kind" == H ]] && anchors["$file#$a"]=1
done <<<"$records"

while IFS=$'\t' read -r kind file line target; do
    case "$kind" in
        M) mentions+=("$file:$line"); continue ;;
        L) ;;
        *) continue ;;
    esac
    links=$((links + 1))
    where="$file:$line"
    case "$target" in
        *../shared* | */work/shared*)
            shared_seen["$where"]=1
            bad+=("$where: $target: points at ../shared, outside the repository"); continue ;;
        http://* | https://* | mailto:*)
            external+=("$where: $target"); continue ;;
        file:* | /*)
            bad+=("$where: $target: an absolute location, outside the repository (use a path relative to $file)"); continue ;;
        [a-zA-Z]*:*)
            if [[ "$target" =~ ^[a-zA-Z][a-zA-Z0-9+.-]*: ]]; then
                bad+=("$where: $target: a ${BASH_REMATCH[0]} link, outside the repository"); continue
            fi ;;
    esac
    path="${target%%#*}"
    anchor=""
    [[ "$target" == *#* ]] && anchor="${target#*#}"
    path="${path%%\?*}"
    if [[ "$path" == *%* ]]; then
        printf -v path '%b' "${path//%/\\x}"
    fi
    if [[ -z "$path" ]]; then
        resolved="$file"
    else
        dir=""
        [[ "$file" == */* ]] && dir="${file%/*}/"
        if ! normalize "$dir$path"; then
            bad+=("$where: $target: climbs above the repository's root"); continue
        fi
        resolved="$REPLY"
    fi
    if [[ -z "${known["$resolved"]:-}" ]]; then
        if [[ -e "$resolved" ]]; then
            bad+=("$where: $target: $resolved exists here but is not in the repository (ignored or generated)")
        else
            bad+=("$where: $target: no such file in the repository ($resolved)")
        fi
        continue
    fi
    if [[ -n "$anchor" && "$resolved" == *.md ]]; then
        slug="${anchor,,}"
        slug="${slug//[^a-z0-9]/}"
        if [[ -z "${anchors["$resolved#$slug"]:-}" ]]; then
            bad+=("$where: $target: $resolved has no heading or anchor '#$anchor'")
        fi
    fi
done <<<"$records"
for where in "${mentions[@]}"; do
    [[ -n "${shared_seen["$where"]:-}" ]] ||
        bad+=("$where: mentions ../shared or /work/shared, a directory beside the repository that a clone does not have")
done

if ((quiet == 0 && ${#external[@]} > 0)); then
    echo "External links (allowed, not fetched):"
    printf '  %s\n' "${external[@]}"
fi
if ((${#bad[@]} > 0)); then
    printf '%s\n' "${bad[@]}" >&2
    echo "check-links.sh: ${#bad[@]} bad link(s) in ${#md_files[@]} Markdown files" >&2
    exit 1
fi
echo "check-links.sh: ${links} links in ${#md_files[@]} Markdown files, all inside the repository and resolving"
