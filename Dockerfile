# The sandbox image: must carry the same version as the @cloudflare/sandbox npm package.
FROM docker.io/cloudflare/sandbox:0.12.10
