#!/usr/bin/env bash
# Installs what the operator-facing tests run for real, with apt when missing: Debian's nginx
# (tests/nginx.rs proxies the ots client through contrib/nginx/otsd.conf), chromium (tests/info_page.rs
# renders the info page headless) and systemd-analyze (tests/ops.rs verifies
# contrib/systemd/otsd.service). Prints `NGINX=... CHROMIUM=... SYSTEMD_ANALYZE=...` for eval.
set -euo pipefail

sudo_cmd=""
[[ $(id -u) == 0 ]] || sudo_cmd="sudo"

need=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The QR code and the page's text need a font to render.
[[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || need+=(fonts-dejavu-core)
if ((${#need[@]})); then
  echo "setup-ops: installing ${need[*]} with apt-get" >&2
  $sudo_cmd apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
    "${need[@]}" >/dev/null 2>&1 \
    || DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y --no-install-recommends "${need[@]}" >&2
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
echo "NGINX=$nginx_bin CHROMIUM=$(command -v chromium) SYSTEMD_ANALYZE=$(command -v systemd-analyze)"
