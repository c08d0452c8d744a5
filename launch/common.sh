# Shared by the launch scripts (sourced, not run): printing commands, dry
# runs, required variables. Each script sets LAUNCH_NAME before sourcing it.

# True when the variable named $1 is set to anything but '', 0, false or no.
is_on() {
  case "${!1:-}" in
    ''|0|false|False|FALSE|no|No|NO) return 1 ;;
    *) return 0 ;;
  esac
}

dry_run() { is_on DRY_RUN; }

# Prints its words as one copy-pasteable shell command: plain words as they
# are, others in single quotes, or in double quotes when they hold a single
# quote but nothing double quotes would expand.
quote_cmd() {
  local words=() word q="'\\''"
  for word in "$@"; do
    if [[ -n "$word" && "$word" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      words+=("$word")
    elif [[ "$word" != *"'"* ]]; then
      words+=("'${word}'")
    elif [[ "$word" != *[\"\$\`\\!]* ]]; then
      words+=("\"${word}\"")
    else
      words+=("'${word//\'/$q}'")
    fi
  done
  echo "${words[*]}"
}

say() { echo "${LAUNCH_NAME}: $*"; }

die() {
  echo "${LAUNCH_NAME}: error: $*" >&2
  exit 2
}

# Prints the command, then runs it (or only prints it under DRY_RUN=1).
run() {
  echo "+ $(quote_cmd "$@")"
  if dry_run; then return 0; fi
  "$@"
}

# require_vars 'NAME|what to set it to' ...: fails naming every unset one.
require_vars() {
  local spec name missing=() hints=()
  for spec in "$@"; do
    name="${spec%%|*}"
    if [[ -z "${!name:-}" ]]; then
      missing+=("$name")
      hints+=("  ${name}: ${spec#*|}")
    fi
  done
  if (( ${#missing[@]} )); then
    {
      echo "${LAUNCH_NAME}: error: missing required variable(s): ${missing[*]}"
      printf '%s\n' "${hints[@]}"
      echo "(usage: ${LAUNCH_NAME} --help)"
    } >&2
    exit 2
  fi
}

# Prints the usage comment at the top of the script file $1.
usage() {
  sed -n '2,/^[^#]/{/^#/!q;/^#SBATCH/d;s/^# \{0,1\}//;p}' "$1"
}

# Splits $EXTRA_ARGS on whitespace into the array extra_args.
read_extra_args() {
  extra_args=()
  if [[ -n "${EXTRA_ARGS:-}" ]]; then
    read -r -a extra_args <<< "$EXTRA_ARGS"
  fi
}
