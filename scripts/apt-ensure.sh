#!/usr/bin/env bash
# apt-ensure.sh: sourced by the install-*-deps.sh scripts. apt_ensure TAG PKG... installs the
# Debian packages among PKG that are not installed yet. When all are installed it only runs
# dpkg-query (no apt-get update, no network, no sudo), so `make` and `make demo` can call it
# every time. Set CPT_SKIP_DEPS=1 to skip it entirely (dependencies installed another way).
apt_ensure() {
  local tag=$1; shift
  [ -n "${CPT_SKIP_DEPS:-}" ] && return 0
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "$tag: not a Debian/Ubuntu system (no dpkg-query); install the equivalents of: $*" >&2
    echo "$tag: HINT: CPT_SKIP_DEPS=1 silences this check" >&2
    return 0
  fi
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "$tag: missing Debian packages: ${missing[*]}" >&2
      echo "$tag: HINT: run as root: apt-get install ${missing[*]}" >&2
      return 1
    fi
    sudo="sudo"
  fi
  echo "$tag: apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}
