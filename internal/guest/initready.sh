# banger: return once the guest's init accepts commands (see InitReadyScript).
i=0
while [ "$i" -lt 1200 ]; do
	case $(readlink /proc/1/exe) in
	*/busybox) ;;
	*systemd*) [ -S /run/systemd/private ] && exit 0 ;;
	*) exit 0 ;;
	esac
	sleep 0.05
	i=$((i + 1))
done
echo "the guest's init (PID 1, $(readlink /proc/1/exe)) did not accept commands within 60 s" >&2
exit 1
