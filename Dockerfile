# cvd in a container: a static binary (no cgo: SQLite is pure Go) on a
# distroless base, run as a non-root user, with its data in the volume
# /data.
#
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t cvd .
#   docker run --rm -v cvd-data:/data cvd init --dir /data --domain example.org
#   (set the listen addresses in /data/cvd.toml to 0.0.0.0:PORT)
#   docker run -d --name cvd -v cvd-data:/data -p 25:2525 -p 143:1143 -p 80:8080 cvd
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/cvd ./cmd/cvd

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/cvd /usr/local/bin/cvd
USER nonroot:nonroot
WORKDIR /data
VOLUME ["/data"]
EXPOSE 2525 1143 8080
ENTRYPOINT ["/usr/local/bin/cvd"]
CMD ["serve", "--config", "/data/cvd.toml"]
