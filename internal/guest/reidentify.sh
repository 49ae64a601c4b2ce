# banger's re-identification of a cloned guest, run by bangerd over SSH
# right after the clone was restored from another VM's snapshot, or in a
# warm template before it is saved to leave the identity agent waiting
# (--listen). It checks for its tools and runs reidentify.pl (its first
# argument) with perl: one process does the work, since every program
# started in a guest that was just restored under emulation costs tens of
# milliseconds.
for tool in ip perl; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "banger-reidentify: the guest has no $tool; a clone needs iproute2 and perl-base" >&2
		exit 3
	}
done
prog=$1
shift
exec perl -e "$prog" -- "$@"
