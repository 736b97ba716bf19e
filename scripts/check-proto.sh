#!/usr/bin/env bash
# Proto hygiene, run by .ci/run before the tests, and by hand from anywhere in
# the repository: bash scripts/check-proto.sh
#
#   1. buf lint                  (rules in buf.yaml)
#   2. buf format                (the files are as `buf format` writes them)
#   3. buf breaking              (against proto/ of the previous commit, HEAD~1)
#   4. generated code            (packages/api/src/gen is what `buf generate` makes)
#
# Every check runs even when an earlier one fails, so one run lists every
# problem; the script exits non-zero if any failed. Nothing in the work tree is
# changed: generation goes to a temporary folder.
#
# BREAKING_AGAINST=<git revision> compares with another commit than HEAD~1
# (e.g. origin/main on a branch of several commits).
set -uo pipefail
cd "$(dirname "$0")/.."
# One stream, so that buf's messages and ours stay in order in any log.
exec 2>&1

# Vendored third-party protos (gRPC health and reflection, googleapis'
# google/rpc error details): published as they are, so not reformatted here;
# buf.yaml keeps them out of lint and breaking.
THIRD_PARTY=(proto/google proto/grpc)

# buf and protoc-gen-es come from node_modules (npm ci), never from a download
# at run time: `npx --no-install` fails instead of fetching a package by name.
if [[ ! -x node_modules/.bin/buf || ! -x node_modules/.bin/protoc-gen-es ]]; then
  echo "check-proto: node_modules/.bin/buf or protoc-gen-es is missing: run \`npm ci\` first"
  exit 2
fi
buf() { npx --no-install buf "$@"; }

failed=()
skipped=()
fail() {
  failed+=("$1")
  printf '\n!! %s\n\n' "$2"
}

exclude=()
for dir in "${THIRD_PARTY[@]}"; do
  [[ -e $dir ]] && exclude+=(--exclude-path "$dir")
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== buf lint"
if ! buf lint; then
  fail lint "buf lint failed: fix the .proto files named above (rules: buf.yaml, lint STANDARD), then run \`npx buf lint\` again."
fi

echo "== buf format"
if ! buf format --diff --exit-code "${exclude[@]}"; then
  fail format "Some .proto files are not formatted as buf formats them (diff above): run \`npx buf format -w\` and commit the result."
fi

echo "== buf breaking"
against=${BREAKING_AGAINST:-HEAD~1}
# A shallow clone may lack the previous commit: deepen it once, quietly.
if ! git rev-parse --verify --quiet "$against^{commit}" >/dev/null &&
  [[ $(git rev-parse --is-shallow-repository 2>/dev/null) == true ]]; then
  timeout 60 git fetch --quiet --deepen=1 >/dev/null 2>&1 || true
fi
if ! base=$(git rev-parse --verify --quiet "$against^{commit}"); then
  if [[ $(git rev-parse --is-shallow-repository 2>/dev/null) == true ]]; then
    why="this is a shallow clone that could not be deepened: run \`git fetch --unshallow\`"
  else
    why="HEAD is the first commit, or $against names no commit here"
  fi
  skipped+=(breaking)
  cat <<EOF

!! SKIPPED buf breaking: commit $against is not in this clone ($why).
!! Nothing was compared. To compare with another commit:
!!   BREAKING_AGAINST=<revision> bash scripts/check-proto.sh

EOF
elif [[ -z $(git ls-tree --name-only "$base" -- proto) ]]; then
  echo "commit $against ($(git rev-parse --short "$base")) has no proto/: nothing to break"
else
  # The previous commit's proto/ and buf.yaml, as committed, in a folder of
  # their own: works in a shallow clone, a worktree and a dirty tree alike.
  mkdir "$tmp/against"
  git archive "$base" -- proto $(git ls-tree --name-only "$base" -- buf.yaml) | tar -x -C "$tmp/against"
  echo "against $against ($(git rev-parse --short "$base"): $(git log -1 --format=%s "$base"))"
  if ! buf breaking --against "$tmp/against"; then
    fail breaking "buf breaking: the changes above break clients of the API as it was at $against (rules: buf.yaml, breaking FILE). Make the change compatible (add fields and RPCs, reserve removed numbers and names), or put it in a new package version (e.g. coffer.secretmanager.v2)."
  fi
fi

echo "== generated code (buf generate)"
# buf generate with --output writes under the temporary folder instead of the
# work tree (buf.gen.yaml's `clean: true` then only empties that copy).
if ! PATH="$PWD/node_modules/.bin:$PATH" buf generate --output "$tmp/gen"; then
  fail generate "buf generate failed (error above)."
else
  out=packages/api/src/gen
  if ! diff -r -u "$tmp/gen/$out" "$out" >"$tmp/gen.diff"; then
    # The files, then the start of the diff with long lines cut (a generated
    # file embeds its descriptor on one line).
    diff -r -q "$tmp/gen/$out" "$out" | sed -E \
      -e "s#^Files $tmp/gen/(.*) and .* differ\$#  differs:       \1#" \
      -e "s#^Only in $tmp/gen/([^:]*): #  not in tree:   \1/#" \
      -e "s#^Only in ([^:]*): #  not generated: \1/#"
    echo
    head -n 60 "$tmp/gen.diff" | sed "s#$tmp/gen/##" | cut -c 1-160
    fail generate "$out is not what \`buf generate\` makes from proto/ (files above; in the diff, - lines are what buf generates, + lines what the tree holds): run \`npm run generate\` and commit $out."
  else
    echo "$out is up to date"
  fi
fi

if ((${#failed[@]} > 0)); then
  echo "check-proto: FAILED: ${failed[*]}"
  exit 1
fi
if ((${#skipped[@]} > 0)); then
  echo "check-proto: passed, but SKIPPED: ${skipped[*]} (see above)"
else
  echo "check-proto: lint, format, breaking and generated code are all right"
fi
