#!/usr/bin/env bash
# Writes the manual pages wsgate(1) and wsgate.yaml(5) into DIR from the
# README, so they are never written twice: the README's sections between
# "<!-- man PAGE -->" and "<!-- /man -->" go into PAGE, with headings
# raised one level, and go-md2man (Debian's go-md2man) converts them.
#
#   scripts/man.sh DIR VERSION
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: man.sh DIR VERSION}
version=${2:-$(cat VERSION)}
command -v go-md2man >/dev/null || { echo "man.sh: go-md2man is not installed (Debian package go-md2man)" >&2; exit 1; }
mkdir -p "$dir"
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" "+%B %Y")

# section PAGE: the README's text marked for PAGE, headings raised, links
# to the README's own anchors kept as plain text, and tables turned into
# paragraphs (tables: see untable).
section() {
  awk -v page="$1" '
    $0 == "<!-- man " page " -->" { on = 1; next }
    $0 == "<!-- /man -->"        { on = 0; next }
    on {
      if ($0 ~ /^##+ /) sub(/^#/, "")
      print
    }' README.md | sed -E 's/\[([^]]+)\]\(#[^)]*\)/\1/g' | untable
}

# untable turns each Markdown table into one paragraph per row: the first
# cell in bold, then each other non-empty cell after its column's name.
# The README's tables are wider than a terminal, and man(1) at 80 columns
# would warn "table wider than line width" and cut them.
untable() {
  awk -F'|' '
    function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
    /^\|/ {
      n = NF - 2
      if (!intable) { intable = 1; for (i = 2; i <= NF - 1; i++) head[i] = trim($i); next }
      if ($0 ~ /^\|[ :-]*-[ |:-]*$/) next
      line = "**" trim($2) "**"
      for (i = 3; i <= NF - 1; i++) {
        c = trim($i)
        if (c == "") continue
        h = head[i]
        line = line (h == "" ? " " : "; " h ": ") c
      }
      sub(/\*\*; /, "**: ", line)
      print line
      print ""
      next
    }
    { intable = 0; print }'
}

page() { # NAME SECTION TITLE SUMMARY SYNOPSIS
  local name=$1 sec=$2 title=$3 summary=$4 synopsis=$5 see
  see="wsgate(1), wsgate.yaml(5), systemd.service(5), apache2(8)"
  {
    printf '%s %s "%s" "wsgate %s" "%s"\n' "$name" "$sec" "$date" "$version" "$title"
    printf '%s\n\n' "$(printf '=%.0s' $(seq 1 60))"
    printf '# NAME\n%s - %s\n\n' "$name" "$summary"
    printf '# SYNOPSIS\n%s\n\n' "$synopsis"
    section "$name.$sec"
    printf '\n# SEE ALSO\n%s\n\nThe README and docs/ in the source tree have the rest: https://github.com/wsgate/wsgate\n' "$see"
  } > "$dir/$name.$sec.md"
  go-md2man -in "$dir/$name.$sec.md" -out "$dir/$name.$sec"
}

page wsgate 1 "User Commands" "WebSocket gateway" \
  '**wsgate** [**-config** *FILE*] | **wsgate check** *FILE* | **wsgate apps** | **wsgate default-config** | **wsgate --version**'
page wsgate.yaml 5 "File Formats" "wsgate's configuration file" \
  '*/etc/wsgate/wsgate.yaml*'
