#!/usr/bin/env bash
# Import graph of the library: which module uses which, and no circles.
#
#   scripts/import-graph.sh [--print] [SRC]      SRC defaults to crates/hyperfabric/src
#
# Two levels are checked:
#   crate    the top-level modules (`crate::X` in any non-comment line of a module's files)
#   runtime  the submodules of runtime/ among themselves (`super::X`, `super::{X, ..}` and
#            `crate::runtime::X`; the hub runtime/mod.rs, which declares them all, is left out)
# and one rule: `config` is a leaf of the node (imports nothing of runtime, wire, fabric,
# transport, metrics, alert).
#
# Each level's edges go through `tsort`; a cycle makes the script print it and exit 1.
# Edges still known to close a circle are listed, with the reason, in
# scripts/import-graph.allow ("LEVEL FROM -> TO  # why"); the script also fails when an
# allowed edge no longer exists, so the list can only shrink.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
print=0
if [[ ${1:-} == --print ]]; then
  print=1
  shift
fi
src=${1:-$here/../crates/hyperfabric/src}
allow=${HF_IMPORT_ALLOW:-$here/import-graph.allow}
[[ -d $src ]] || { echo "import-graph: no directory $src" >&2; exit 2; }

# The files of module NAME under DIR (NAME.rs, or everything under NAME/).
files_of() {
  local dir=$1 name=$2
  if [[ -d $dir/$name ]]; then find "$dir/$name" -name '*.rs' | sort; else echo "$dir/$name.rs"; fi
}

# Module names under DIR (directories and .rs files), minus the given exclusions.
modules_of() {
  local dir=$1; shift
  local m
  for m in "$dir"/*; do
    m=$(basename "$m" .rs)
    [[ " $* " == *" $m "* ]] || echo "$m"
  done | sort -u
}

# Non-comment lines of the given files.
code() { grep -hv '^[[:space:]]*//' "$@" || true; }

crate_edges() {
  local mods m f
  mods=$(modules_of "$src" lib main)
  for m in $mods; do
    # shellcheck disable=SC2046
    code $(files_of "$src" "$m") | grep -oE 'crate::[a-z_][a-z0-9_]*' | sed 's/^crate:://' | sort -u |
      while read -r f; do
        [[ $f != "$m" ]] && grep -qx "$f" <<<"$mods" && echo "$m $f"
      done
  done
  return 0
}

runtime_edges() {
  local rt=$src/runtime mods m file rel depth prefix names n
  [[ -d $rt ]] || return 0
  mods=$(modules_of "$rt" mod)
  for m in $mods; do
    for file in $(files_of "$rt" "$m"); do
      rel=${file#"$rt"/}
      # runtime/X.rs and runtime/X/mod.rs name their siblings `super::`; deeper files one
      # `super::` per level.
      depth=$(tr -cd '/' <<<"$rel" | wc -c)
      [[ $rel == */mod.rs ]] && depth=$((depth - 1))
      prefix=$(printf 'super::%.0s' $(seq 0 "$depth"))
      names=$(code "$file" |
        grep -oE "(crate::runtime::|(^|[^:[:alnum:]_])${prefix})(\{[^}]*\}|[a-z_][a-z0-9_]*)" |
        sed -E "s/^.*(crate::runtime::|${prefix})//; s/[{}]//g" | tr ',' '\n' |
        sed -E 's/^[[:space:]]*//; s/::.*//; s/[[:space:]].*//' | sort -u)
      for n in $names; do
        [[ $n != "$m" ]] && grep -qx "$n" <<<"$mods" && echo "$m $n"
      done
    done
  done | sort -u
}

allowed() { # LEVEL -> "from to" lines
  [[ -f $allow ]] || return 0
  sed 's/#.*//' "$allow" | awk -v lvl="$1" '$1 == lvl && $3 == "->" { print $2, $4 }'
}

status=0
check_level() {
  local level=$1 edges=$2 ok kept stale
  ok=$(allowed "$level")
  stale=$(comm -13 <(sort -u <<<"$edges") <(sort -u <<<"$ok") | sed '/^$/d')
  if [[ -n $stale ]]; then
    echo "import-graph: $level: allowed edges that no longer exist (remove them from $(basename "$allow")):" >&2
    sed 's/^/  /; s/ / -> /2' <<<"$stale" >&2
    status=1
  fi
  kept=$(comm -23 <(sort -u <<<"$edges") <(sort -u <<<"$ok") | sed '/^$/d')
  if [[ $print == 1 ]]; then
    echo "# $level"
    sed 's/ / -> /' <<<"$edges"
  fi
  local out
  if ! out=$(tsort <<<"$kept" 2>&1 >/dev/null); then
    echo "import-graph: $level: import circle:" >&2
    grep -v '^tsort: -: input contains a loop:$' <<<"$out" | sed 's/^tsort: /  /' >&2
    status=1
  elif [[ -n $out ]]; then
    echo "import-graph: $level: import circle:" >&2
    sed 's/^tsort: /  /' <<<"$out" >&2
    status=1
  fi
}

crate=$(crate_edges | sort -u)
check_level crate "$crate"
check_level runtime "$(runtime_edges)"

leaf=$(awk '$1 == "config" && $2 ~ /^(runtime|wire|fabric|transport|metrics|alert)$/ { print $2 }' <<<"$crate" |
  grep -vxF -f <(allowed crate | awk '$1 == "config" { print $2 }') || true)
if [[ -n $leaf ]]; then
  echo "import-graph: config is not a leaf: it imports $(tr '\n' ' ' <<<"$leaf")" >&2
  status=1
fi

[[ $status == 0 ]] && echo "import-graph: no import circles ($(wc -l <<<"$crate") crate-level edges)"
exit $status
