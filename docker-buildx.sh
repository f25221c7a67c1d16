#!/usr/bin/env bash
# Builds webterm's container image for several platforms with docker buildx,
# tagged from the crate version and the git commit. See --help.
set -euo pipefail

usage() {
    cat <<'EOF'
docker-buildx.sh: build (and push) webterm's image for amd64 and arm64.

USAGE:
    ./docker-buildx.sh [--push | --load] [OPTIONS]

Without --push or --load the image is built for every platform and left in
the build cache (a check that it builds). Every stage cross-compiles on this
machine's platform, so an arm64 build needs no emulation.

OPTIONS:
        --push                Push the multi-platform image to the registry
                              named by --image (log in first).
        --load                Load the image into the local docker, for one
                              platform: this machine's unless --platform says.
        --image NAME          Repository to tag [default: webterm]
                              (for example ghcr.io/you/webterm).
        --platform LIST       Comma-separated platforms
                              [default: linux/amd64,linux/arm64; with --load,
                              this machine's]. linux/arm/v7 is accepted too,
                              but CI does not build it.
        --target NAME         webterm (a login shell) or socktop (also bundles
                              the socktop TUI; tags get a -socktop suffix)
                              [default: webterm].
        --build-arg KEY=VALUE Passed to the build (RUST_IMAGE,
                              SOCKTOP_VERSION). Repeatable.
        --dry-run             Print the build command instead of running it.
    -h, --help                Print this help.

TAGS:
    NAME:VERSION  NAME:VERSION-SHA  NAME:latest
    VERSION is Cargo.toml's version and SHA the short git commit (with
    -dirty if the work tree has changes); the socktop target appends
    -socktop to each (NAME:latest-socktop).

ENVIRONMENT:
    DOCKER    The docker client to run [default: docker].

Without the buildx plugin (Debian's docker.io has none), --load still works
for one platform through the engine's own BuildKit (DOCKER_BUILDKIT=1
docker build --platform); --push and multi-platform builds need buildx.

EXAMPLES:
    ./docker-buildx.sh --load                            # try it locally
    docker run --rm -p 127.0.0.1:8080:8080 webterm:latest
    ./docker-buildx.sh --push --image ghcr.io/you/webterm
    ./docker-buildx.sh --load --platform linux/arm64 --target socktop
EOF
}

die() {
    printf 'docker-buildx.sh: %s\n' "$*" >&2
    exit 2
}

cd "$(dirname "$0")"
docker=${DOCKER:-docker}
mode=cache
image=webterm
platforms=
target=webterm
dry_run=false
build_args=()

while [ $# -gt 0 ]; do
    case $1 in
        --push) mode=push ;;
        --load) mode=load ;;
        --image) [ $# -ge 2 ] || die "--image needs a NAME"; image=$2; shift ;;
        --platform) [ $# -ge 2 ] || die "--platform needs a LIST"; platforms=$2; shift ;;
        --target) [ $# -ge 2 ] || die "--target needs a NAME"; target=$2; shift ;;
        --build-arg)
            [ $# -ge 2 ] || die "--build-arg needs KEY=VALUE"
            [[ $2 == *=* ]] || die "--build-arg '$2' is not KEY=VALUE"
            build_args+=(--build-arg "$2"); shift ;;
        --dry-run) dry_run=true ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1'; see ./docker-buildx.sh --help" ;;
    esac
    shift
done

case $target in
    webterm) suffix= ;;
    socktop) suffix=-socktop ;;
    *) die "--target is webterm or socktop, not '$target'" ;;
esac

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || die "no version in Cargo.toml"
if sha=$(git rev-parse --short=12 HEAD 2>/dev/null); then
    git diff --quiet HEAD 2>/dev/null || sha="$sha-dirty"
else
    sha=nogit
fi
tags=(--tag "$image:$version$suffix" --tag "$image:$version-$sha$suffix" --tag "$image:latest$suffix")
args=(--target "$target" --build-arg "VERSION=$version" --build-arg "REVISION=$sha"
    "${build_args[@]}" "${tags[@]}")

native_platform() {
    case $(uname -m) in
        x86_64) echo linux/amd64 ;;
        aarch64 | arm64) echo linux/arm64 ;;
        armv7l) echo linux/arm/v7 ;;
        *) die "no default platform for $(uname -m); give --platform" ;;
    esac
}

if [ "$mode" = load ]; then
    platforms=${platforms:-$(native_platform)}
    [[ $platforms != *,* ]] || die "--load builds one platform (docker cannot load a multi-platform image); got '$platforms'"
else
    platforms=${platforms:-linux/amd64,linux/arm64}
fi

run() {
    printf '+ %s\n' "$*" >&2
    $dry_run || "$@"
}

if "$docker" buildx version >/dev/null 2>&1; then
    case $mode in
        push) out=(--push) ;;
        load) out=(--load) ;;
        cache) out=() ;;
    esac
    run "$docker" buildx build --platform "$platforms" "${out[@]}" "${args[@]}" .
elif [ "$mode" = load ]; then
    echo "docker-buildx.sh: no buildx plugin; building $platforms with the engine's BuildKit" >&2
    run env DOCKER_BUILDKIT=1 "$docker" build --platform "$platforms" "${args[@]}" .
else
    die "--push and multi-platform builds need the docker buildx plugin ('$docker buildx version' failed); --load builds one platform without it"
fi

if [ "$mode" != cache ] && ! $dry_run; then
    printf 'built %s for %s: %s:%s%s\n' "$target" "$platforms" "$image" "$version" "$suffix"
fi
