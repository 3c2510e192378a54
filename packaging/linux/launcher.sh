#!/bin/sh
# /usr/bin/feature-map-explorer from the .deb: the bundle lives in /opt and finds its files beside
# its own executable, so the launcher only hands over the arguments.
exec /opt/feature-map-explorer/feature-map-explorer "$@"
