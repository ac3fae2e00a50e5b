# syntax=docker/dockerfile:1

# ---- build ----------------------------------------------------------------
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src

# Build settings and project files first, so `dotnet restore` is cached until
# one of them changes.
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig EventProcessor.sln ./
COPY src/EventProcessor/EventProcessor.csproj src/EventProcessor/
COPY src/EventProcessor.Host/EventProcessor.Host.csproj src/EventProcessor.Host/
COPY src/EventProcessor.Ingress/EventProcessor.Ingress.csproj src/EventProcessor.Ingress/
COPY handlers/EventProcessor.Handlers/EventProcessor.Handlers.csproj handlers/EventProcessor.Handlers/
# The handlers project imports its schema check from here, so restore needs it too.
COPY handlers/EventProcessor.Handlers/Build/ handlers/EventProcessor.Handlers/Build/
COPY migrations/EventProcessor.Migrations/EventProcessor.Migrations.csproj migrations/EventProcessor.Migrations/
RUN dotnet restore src/EventProcessor.Host/EventProcessor.Host.csproj

COPY src/ src/
COPY handlers/ handlers/
COPY migrations/ migrations/
RUN dotnet publish src/EventProcessor.Host/EventProcessor.Host.csproj \
    -c Release -o /app --no-restore /p:UseAppHost=false

# ---- runtime --------------------------------------------------------------
FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app .

# The app listens on 0.0.0.0:$PORT itself (ASPNETCORE_URLS is deliberately
# not set). Cloud Run sets PORT; 8080 is the default elsewhere.
ENV PORT=8080 \
    ASPNETCORE_ENVIRONMENT=Production \
    DOTNET_gcServer=0

# Non-root: the aspnet image ships the `app` user (UID 1654, $APP_UID).
USER $APP_UID

# Nothing is written at runtime, so the container runs with a read-only root
# file system (`docker run --read-only`, compose `read_only: true`).
#
# No HEALTHCHECK on purpose: Cloud Run runs its own startup/liveness probes.
# The probe endpoint is GET /health.
EXPOSE 8080
ENTRYPOINT ["dotnet", "EventProcessor.Host.dll"]
