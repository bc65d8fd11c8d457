# A Consul agent image around the static binary that tools/consul/build.sh
# builds, for deployments with no image registry at hand; where one is
# reachable the official hashicorp/consul image does the same job.
# deploy/build.sh prepares the build context:
#
#   consul   the binary
#   data/    an empty directory, owned by 65532, for the agent's state
#   tmp/     an empty directory, mode 1777, for /tmp
#
# CHECKPOINT_DISABLE stops the agent from calling HashiCorp's update check.
FROM scratch
COPY tmp/ /tmp/
COPY --chown=65532:65532 data/ /consul/data/
COPY consul /usr/local/bin/consul
ENV CHECKPOINT_DISABLE=1
USER 65532:65532
EXPOSE 8300 8301 8301/udp 8302 8302/udp 8500 8600 8600/udp
VOLUME /consul/data
ENTRYPOINT ["/usr/local/bin/consul"]
CMD ["agent", "-dev", "-client", "0.0.0.0"]
