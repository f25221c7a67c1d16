# webterm's image: a static (musl) webterm, busybox and terminfo on scratch.
#
# Every build stage runs on the build machine's own platform and
# cross-compiles for the target one, so nothing compiles under emulation and
# an arm64 image builds as fast as an amd64 one. The runtime has no package
# manager, no libc and no RUN: webterm is PID 1 (it reaps adopted orphans),
# busybox is the shell and the tools, and the user is not root.
#
#   ./docker-buildx.sh --load                       this machine's platform
#   ./docker-buildx.sh --push --image REGISTRY/webterm    amd64 + arm64
#   docker build --target socktop .                 also bundles socktop
#
# The base images are arguments, so a builder with no registry can bring its
# own; CI builds them from local material (scripts/test-image.sh).
ARG RUST_IMAGE=rust:1-slim-bookworm

# --- the build machine's Rust, with the target platform's std.
FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS toolchain
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
ARG TARGETARCH
ARG TARGETVARIANT
# /etc/webterm-target: the Rust target, the Debian architecture, and its
# GNU triple (the prefix of Debian's cross compilers).
RUN case "${TARGETARCH}/${TARGETVARIANT}" in \
      amd64/*) echo "x86_64-unknown-linux-musl amd64 x86_64-linux-gnu" ;; \
      arm64/*) echo "aarch64-unknown-linux-musl arm64 aarch64-linux-gnu" ;; \
      arm/v7)  echo "armv7-unknown-linux-musleabihf armhf arm-linux-gnueabihf" ;; \
      *) echo "webterm: no build for linux/${TARGETARCH}/${TARGETVARIANT}" >&2; exit 1 ;; \
    esac > /etc/webterm-target \
 && rustup target add "$(cut -d' ' -f1 /etc/webterm-target)"

# --- the runtime's files: the target's busybox, terminfo, a user, a profile.
FROM toolchain AS rootfs
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
WORKDIR /work
# Debian's static busybox for the target architecture, unpacked rather than
# installed, so no target binary runs here; the native one lists the applets
# (same package version, same applets).
RUN arch="$(cut -d' ' -f2 /etc/webterm-target)" \
 && native="$(dpkg --print-architecture)" \
 && dpkg --add-architecture "$arch" \
 && apt-get update -qq \
 && apt-get download "busybox-static:$native" \
 && { [ "$arch" = "$native" ] || apt-get download "busybox-static:$arch"; } \
 && rm -rf /var/lib/apt/lists/* \
 && dpkg-deb -x "busybox-static_"*"_$native.deb" native \
 && dpkg-deb -x "busybox-static_"*"_$arch.deb" target \
 && mkdir -p /rootfs/bin /rootfs/etc /rootfs/tmp /rootfs/usr/share /home/webterm \
 && chmod 1777 /rootfs/tmp && chmod 0750 /home/webterm \
 && cp target/bin/busybox /rootfs/bin/busybox \
 && for applet in $(native/bin/busybox --list-full); do \
      mkdir -p "/rootfs/$(dirname "$applet")"; \
      [ -e "/rootfs/$applet" ] || ln -s /bin/busybox "/rootfs/$applet"; \
    done \
 && cp -a /usr/lib/terminfo /rootfs/usr/share/terminfo \
 && printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
      'webterm:x:10001:10001:webterm:/home/webterm:/bin/sh' > /rootfs/etc/passwd \
 && printf '%s\n' 'root:x:0:' 'webterm:x:10001:' > /rootfs/etc/group \
 && printf '%s\n' 'export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' \
      "PS1='\\u@\\h:\\w\\\$ '" > /rootfs/etc/profile

# --- a C compiler for the target: ring (native TLS's cryptography, for
# webterm and socktop) compiles C and assembly. A musl C cross compiler is
# Debian's gcc for the target plus Debian's musl-dev for the target, which
# ships the <triple>-linux-musl-gcc wrapper. Rust's lld links, with Rust's
# own static musl: Debian's wrapper would link dynamically. Unpinned: the
# compiler follows the base image's Debian release.
FROM toolchain AS cc
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN read -r _ arch gnu < /etc/webterm-target \
 && dpkg --add-architecture "$arch" \
 && apt-get update -qq \
 && gcc="gcc-$gnu" && [ "$arch" != "$(dpkg --print-architecture)" ] || gcc=gcc \
 && apt-get install -y -qq --no-install-recommends "$gcc" "musl-dev:$arch" \
 && rm -rf /var/lib/apt/lists/*

# --- webterm itself, static.
FROM cc AS build
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo .cargo
COPY src src
COPY public public
COPY assets assets
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    read -r target _ gnu < /etc/webterm-target \
 && export "CC_$(echo "$target" | tr - _)=${gnu/gnu/musl}-gcc" \
 && cargo build --profile dist --locked --target "$target" --bin webterm \
 && install -D "target/$target/dist/webterm" /out/usr/local/bin/webterm

# --- socktop and socktop_agent (crates.io), the seed's dashboard, for the
# socktop target. The agent is built without its GPU features (NVIDIA's
# library is loaded at run time, which a static binary cannot do).
FROM cc AS socktop-build
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
ARG SOCKTOP_VERSION=1.60.1
# socktop's TLS (rustls with ring and aws-lc) compiles C too.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/socktop-target,sharing=locked \
    read -r target _ gnu < /etc/webterm-target \
 && cc="$(echo "$gnu" | sed s/gnu/musl/)-gcc" \
 && export "CC_$(echo "$target" | tr - _)=$cc" \
      "CARGO_TARGET_$(echo "$target" | tr a-z- A-Z_)_LINKER=rust-lld" \
 && CARGO_TARGET_DIR=/socktop-target cargo install socktop --locked \
      --version "$SOCKTOP_VERSION" --target "$target" --root /out/usr/local \
 && CARGO_TARGET_DIR=/socktop-target cargo install socktop_agent --locked \
      --no-default-features --version "$SOCKTOP_VERSION" --target "$target" \
      --root /out/usr/local \
 && rm -f /out/usr/local/.crates.toml /out/usr/local/.crates2.json

# --- the runtime, shared by both images.
FROM scratch AS runtime
COPY --from=rootfs /rootfs/ /
COPY --from=rootfs --chown=10001:10001 /home/webterm /home/webterm
COPY --from=build /out/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
    HOME=/home/webterm \
    USER=webterm \
    SHELL=/bin/sh \
    WEBTERM_LISTEN=0.0.0.0:8080
USER 10001:10001
WORKDIR /home/webterm
EXPOSE 8080
# `webterm health` reads WEBTERM_LISTEN, so the check follows the port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["webterm", "health"]
ENTRYPOINT ["webterm"]

# --- webterm serving the socktop TUI; point it at an agent with
# `docker run IMAGE socktop ws://HOST:3000/ws` (arguments are the command).
# The same image runs the agent: `--entrypoint socktop_agent`.
FROM runtime AS socktop
COPY --from=socktop-build /out/ /
ENV WEBTERM_IDLE_POLICY=activity

# --- the default target: webterm serving a login shell (busybox sh).
FROM runtime AS webterm
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="webterm" \
      org.opencontainers.image.description="A terminal in your browser, one PTY per tab, no orphaned processes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT"
