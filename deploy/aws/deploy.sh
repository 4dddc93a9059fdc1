#!/usr/bin/env bash
# AWS VPC Traffic Mirroring to a vxdecap collector, from nothing but an AWS account, a VPC subnet
# and `aws configure`:
#   1. the collector, unless --collector-instance names one: a security group letting VXLAN
#      (UDP 4789) in from the VPC and SSH from --ssh-from, Debian 12 (the Debian project's AMI)
#      on a Nitro instance, cloud-init from deploy/cloud-init.yaml as its user data;
#   2. a traffic mirror target: the collector's network interface;
#   3. a traffic mirror filter taking everything, in and out (narrow it with your own rules);
#   4. a traffic mirror session from each --source-eni to the target, VNI --vni, mirrored
#      packets cut to --packet-length bytes so that they fit the collector's MTU;
#   5. the vxdecap package onto the collector (scp), then vxdecap-collector-setup, which readies
#      the NIC and enables vxdecap@IFACE.
# --dry-run prints every command (a bash script, with $(…) captures shown as placeholders) and
# runs none. Mirror sources must be Nitro instances too.
#
#   deploy/aws/deploy.sh --subnet subnet-0abc --source-eni eni-0123 --key-name me \
#     --ssh-from 203.0.113.7/32 --dry-run
set -euo pipefail

usage() {
  cat << 'USAGE'
usage: deploy/aws/deploy.sh --subnet SUBNET --source-eni ENI [--source-eni ENI …] [options]
  --subnet SUBNET          the subnet the collector is launched in (its VPC's CIDR may send VXLAN)
  --source-eni ENI         a network interface to mirror (repeatable)
  --collector-instance ID  an existing collector instead of launching one
  --instance-type TYPE     the collector's instance type (c6in.xlarge: Nitro, 4 vCPUs, ENA)
  --key-name NAME          the EC2 key pair for SSH to the collector (admin@…)
  --ssh-from CIDR          who may SSH to the collector (your address/32); needed to copy the package
  --vni N                  the VXLAN network identifier of the sessions (4242)
  --packet-length N        bytes of each packet mirrored (default: the MTU less 54 bytes of VXLAN)
  --mtu N                  the collector NIC's MTU (3498: XDP's limit on ENA)
  --deb FILE               the package to install (target/debian/vxdecap_*.deb: ./scripts/package.sh)
  --deb-url URL            or a URL the collector downloads it from at first boot (no scp)
  --name NAME              name tag and prefix (vxdecap)
  --dry-run                print the commands, run none
USAGE
  exit "$1"
}

here=$(cd "$(dirname "$0")" && pwd)
subnet=""
source_enis=()
instance=""
instance_type=c6in.xlarge
key_name=""
ssh_from=""
vni=4242
packet_length=""
mtu=3498
deb=""
deb_url=""
name=vxdecap
dry_run=0
while [ $# -gt 0 ]; do
  case $1 in
    --subnet) subnet=$2; shift 2 ;;
    --source-eni) source_enis+=("$2"); shift 2 ;;
    --collector-instance) instance=$2; shift 2 ;;
    --instance-type) instance_type=$2; shift 2 ;;
    --key-name) key_name=$2; shift 2 ;;
    --ssh-from) ssh_from=$2; shift 2 ;;
    --vni) vni=$2; shift 2 ;;
    --packet-length) packet_length=$2; shift 2 ;;
    --mtu) mtu=$2; shift 2 ;;
    --deb) deb=$2; shift 2 ;;
    --deb-url) deb_url=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage 2 ;;
  esac
done

# The transcript: each command as bash would read it; a placeholder ${var} of a dry run stays
# expandable, so the transcript is itself a script.
# shellcheck disable=SC2016
word() {
  case $1 in
    *'${'*) printf '"%s"' "$1" ;;
    '' | *[!A-Za-z0-9_@%+=:,./-]*)
      case $1 in
        *"'"*) printf '%q' "$1" ;;
        *) printf "'%s'" "$1" ;;
      esac
      ;;
    *) printf '%s' "$1" ;;
  esac
}
words() {
  word "$1"
  shift
  for w in "$@"; do
    printf ' '
    word "$w"
  done
}
# Prints a command; runs it unless --dry-run.
run() {
  words "$@"
  printf '\n'
  if [ "$dry_run" = 0 ]; then "$@"; fi
}
# run_to FILE command…: the same, its output written to FILE.
run_to() {
  local file=$1
  shift
  words "$@"
  printf ' > '
  word "$file"
  printf '\n'
  if [ "$dry_run" = 0 ]; then "$@" > "$file"; fi
}
# capture VAR command…: VAR gets the command's output; a dry run prints `VAR=$(command)` and
# VAR stands for it as ${VAR}.
# shellcheck disable=SC2016
capture() {
  local var=$1
  shift
  printf '%s=$(' "$var"
  words "$@"
  printf ')\n'
  if [ "$dry_run" = 0 ]; then
    printf -v "$var" '%s' "$("$@")"
  else
    # shellcheck disable=SC2016
    printf -v "$var" '${%s}' "$var"
  fi
}
step() { printf '\n# %s\n' "$*"; }

# Set by capture.
vpc="" vpc_cidr="" group="" ami="" collector_eni="" target="" filter="" session="" collector_ip=""

[ ${#source_enis[@]} -gt 0 ] || { echo "--source-eni is required" >&2; usage 2; }
[ -n "$instance" ] || [ -n "$subnet" ] || { echo "--subnet (or --collector-instance) is required" >&2; usage 2; }
if [ -z "$instance" ]; then
  [ -n "$key_name" ] || { echo "--key-name is required to launch the collector" >&2; usage 2; }
fi
if [ -z "$deb_url" ]; then
  [ -n "$ssh_from" ] || [ -n "$instance" ] || { echo "--ssh-from is required to copy the package (or give --deb-url)" >&2; usage 2; }
  if [ -z "$deb" ]; then
    for f in "$here"/../../target/debian/vxdecap_*.deb; do
      if [ -e "$f" ]; then deb=$(realpath "$f"); fi
    done
    [ -n "$deb" ] || [ "$dry_run" = 1 ] || { echo "no package: run ./scripts/package.sh or give --deb" >&2; exit 2; }
    deb=${deb:-target/debian/vxdecap_VERSION_amd64.deb}
  fi
fi
# AWS cuts a mirrored packet that does not fit the target's MTU; cut it ourselves, so vxdecap
# counts it as truncated_mirror and writes the inner packet's original length.
packet_length=${packet_length:-$((mtu - 54))}

echo "#!/usr/bin/env bash"
echo "# AWS Traffic Mirroring to a vxdecap collector"
echo "set -euo pipefail"

if [ -z "$instance" ]; then
  step "1. the collector: VXLAN from the VPC, SSH from $ssh_from; Debian 12 on $instance_type, cloud-init"
  capture vpc aws ec2 describe-subnets --subnet-ids "$subnet" --query 'Subnets[0].VpcId' --output text
  capture vpc_cidr aws ec2 describe-vpcs --vpc-ids "$vpc" --query 'Vpcs[0].CidrBlock' --output text
  capture group aws ec2 create-security-group --group-name "$name-collector" \
    --description "vxdecap collector: VXLAN from the VPC" --vpc-id "$vpc" --query GroupId --output text
  run aws ec2 authorize-security-group-ingress --group-id "$group" --protocol udp --port 4789 \
    --cidr "$vpc_cidr" --output text
  if [ -n "$ssh_from" ]; then
    run aws ec2 authorize-security-group-ingress --group-id "$group" --protocol tcp --port 22 \
      --cidr "$ssh_from" --output text
  fi
  # Debian's own AMIs (account 136693071363), the newest Debian 12 for amd64.
  capture ami aws ec2 describe-images --owners 136693071363 \
    --filters 'Name=name,Values=debian-12-amd64-*' 'Name=state,Values=available' \
    --query 'sort_by(Images, &CreationDate)[-1].ImageId' --output text
  user_data=${TMPDIR:-/tmp}/$name-collector.cloud-init.yaml
  run_to "$user_data" sed -e "s|^      VXDECAP_MTU=.*|      VXDECAP_MTU=$mtu|" \
    -e "s|^      VXDECAP_DEB_URL=.*|      VXDECAP_DEB_URL=$deb_url|" "$(realpath "$here/../cloud-init.yaml")"
  capture instance aws ec2 run-instances --image-id "$ami" --instance-type "$instance_type" \
    --subnet-id "$subnet" --security-group-ids "$group" --key-name "$key_name" \
    --associate-public-ip-address --user-data "file://$user_data" \
    --tag-specifications "ResourceType=instance,Tags=[{Key=Name,Value=$name-collector}]" \
    --query 'Instances[0].InstanceId' --output text
  run aws ec2 wait instance-running --instance-ids "$instance"
else
  step "1. the collector: $instance"
fi
capture collector_eni aws ec2 describe-instances --instance-ids "$instance" \
  --query 'Reservations[0].Instances[0].NetworkInterfaces[0].NetworkInterfaceId' --output text

step "2. the mirror target: the collector's network interface"
capture target aws ec2 create-traffic-mirror-target --network-interface-id "$collector_eni" \
  --description "$name collector" --query 'TrafficMirrorTarget.TrafficMirrorTargetId' --output text

step "3. the mirror filter: everything, in and out"
capture filter aws ec2 create-traffic-mirror-filter --description "$name: all traffic" \
  --query 'TrafficMirrorFilter.TrafficMirrorFilterId' --output text
for direction in ingress egress; do
  run aws ec2 create-traffic-mirror-filter-rule --traffic-mirror-filter-id "$filter" \
    --traffic-direction "$direction" --rule-number 100 --rule-action accept \
    --source-cidr-block 0.0.0.0/0 --destination-cidr-block 0.0.0.0/0 --output text
done

step "4. a mirror session per source, VNI $vni, packets cut to $packet_length bytes"
n=0
for eni in "${source_enis[@]}"; do
  n=$((n + 1))
  capture session aws ec2 create-traffic-mirror-session --network-interface-id "$eni" \
    --traffic-mirror-target-id "$target" --traffic-mirror-filter-id "$filter" \
    --session-number "$n" --virtual-network-id "$vni" --packet-length "$packet_length" \
    --description "$name: $eni" --query 'TrafficMirrorSession.TrafficMirrorSessionId' --output text
  echo "echo \"mirror session ${session} from $eni\""
done

step "5. vxdecap on the collector"
capture collector_ip aws ec2 describe-instances --instance-ids "$instance" \
  --query 'Reservations[0].Instances[0].PublicIpAddress' --output text
ssh_opts=(-o StrictHostKeyChecking=accept-new -o ConnectTimeout=20)
run ssh "${ssh_opts[@]}" "admin@$collector_ip" cloud-init status --wait
if [ -z "$deb_url" ]; then
  run scp "${ssh_opts[@]}" "$deb" "admin@$collector_ip:/tmp/vxdecap.deb"
  run ssh "${ssh_opts[@]}" "admin@$collector_ip" sudo vxdecap-collector-setup --deb /tmp/vxdecap.deb
else
  run ssh "${ssh_opts[@]}" "admin@$collector_ip" sudo systemctl --no-pager status 'vxdecap@*'
fi

step "done: watch it"
echo "# ssh admin@$collector_ip vxdecap top     # rates per queue and VNI ($vni)"
echo "# ssh admin@$collector_ip journalctl -u 'vxdecap@*' -f"
echo "# delete: aws ec2 delete-traffic-mirror-session / -filter / -target, then terminate the instance"
