#!/usr/bin/env bash
# Azure Virtual Network TAP to a vxdecap collector, from nothing but a subscription and `az login`.
# The flow of the published vTAP labs (portal and Bicep), as az CLI commands:
#   1. a resource group and a VNet 10.0.0.0/16: snet-app 10.0.1.0/24 (the mirrored VMs) and
#      snet-collector 10.0.2.0/24;
#   2. the collector: Debian 12, its NSG letting VXLAN (UDP 4789) in from the VNet and SSH from
#      --ssh-from, cloud-init from deploy/cloud-init.yaml; Accelerated Networking only with
#      --accelerated-networking true (see below);
#   3. a source VM running nginx in snet-app, unless --source-nic names NICs to mirror;
#   4. the vTAP resource, port 4789, whose destination is the collector NIC's IP configuration
#      or, with --ilb, the frontend of an internal Standard load balancer in front of it;
#   5. a tap configuration on each source NIC;
#   6. the vxdecap package onto the collector (scp), then vxdecap-collector-setup, which readies
#      the NIC and enables vxdecap@IFACE.
# --dry-run prints every command (a bash script, with $(…) captures shown as placeholders) and
# runs none. --delete removes the resource group.
#
# Accelerated Networking is off by default: with it, the mirror arrives on the SR-IOV VF under
# the netvsc device, and vxdecap binds its AF_XDP sockets to the netvsc device's queues only, so
# (on reading the kernel source: xsk_rcv_check) frames redirected from the VF would be dropped.
# Turn it on once vxdecap captures on the VF too; `vxdecap doctor`, which the collector's setup
# runs when the installed vxdecap has it, says whether a capture would lose traffic.
#
#   deploy/azure/deploy.sh --location westcentralus --ssh-from 203.0.113.7/32 --dry-run
#   deploy/azure/deploy.sh --location westcentralus --ssh-from 203.0.113.7/32
#   deploy/azure/deploy.sh --resource-group rg-vxdecap --delete
set -euo pipefail

usage() {
  cat << 'USAGE'
usage: deploy/azure/deploy.sh --location LOCATION --ssh-from CIDR [options]
       deploy/azure/deploy.sh --resource-group RG --delete
  --resource-group RG    the resource group (rg-vxdecap), created
  --location LOCATION    an Azure region where vTAP is available (e.g. westcentralus)
  --prefix NAME          prefix of the resource names (vxdecap)
  --ssh-from CIDR        who may SSH to the collector (your address/32); needed to copy the package
  --source-nic NIC       a NIC to mirror, by name in RG or by resource ID (repeatable); without
                         it a source VM NAME-app running nginx is created and mirrored
  --ilb                  send the mirror to an internal load balancer's frontend, the collector
                         behind it, instead of to the collector's NIC
  --collector-size SIZE  the collector's VM size (Standard_D4s_v5: 4 vCPUs)
  --accelerated-networking true|false
                         SR-IOV for the collector's NIC (false: see the note at the top)
  --admin-user NAME      the VMs' administrator (azureuser)
  --ssh-key FILE         public key for the administrator (~/.ssh/id_ed25519.pub or id_rsa.pub)
  --deb FILE             the package to install (target/debian/vxdecap_*.deb: ./scripts/package.sh)
  --deb-url URL          or a URL the collector downloads it from at first boot (no scp)
  --mtu N                the collector NIC's MTU (3500: VXLAN around 1500-byte frames, XDP's limit)
  --dry-run              print the commands, run none
  --delete               delete the resource group and everything in it
USAGE
  exit "$1"
}

here=$(cd "$(dirname "$0")" && pwd)
rg="rg-vxdecap"
location=""
prefix=vxdecap
ssh_from=""
source_nics=()
ilb=0
size=Standard_D4s_v5
accelerated=false
admin=azureuser
ssh_key=""
deb=""
deb_url=""
mtu=3500
dry_run=0
delete=0
while [ $# -gt 0 ]; do
  case $1 in
    --resource-group) rg=$2; shift 2 ;;
    --location) location=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --ssh-from) ssh_from=$2; shift 2 ;;
    --source-nic) source_nics+=("$2"); shift 2 ;;
    --ilb) ilb=1; shift ;;
    --collector-size) size=$2; shift 2 ;;
    --accelerated-networking) accelerated=$2; shift 2 ;;
    --admin-user) admin=$2; shift 2 ;;
    --ssh-key) ssh_key=$2; shift 2 ;;
    --deb) deb=$2; shift 2 ;;
    --deb-url) deb_url=$2; shift 2 ;;
    --mtu) mtu=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --delete) delete=1; shift ;;
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
# Set by capture.
collector_nic_id="" collector_nic_name="" collector_ipconfig_name=""
app_nic_id="" app_nic_name="" destination="" tap_id="" collector_ip=""
step() { printf '\n# %s\n' "$*"; }

if [ "$delete" = 1 ]; then
  step "delete everything the deployment made"
  run az group delete --name "$rg" --yes --no-wait
  exit 0
fi
[ -n "$location" ] || { echo "--location is required" >&2; usage 2; }
case $accelerated in
  true | false) ;;
  *) echo "--accelerated-networking true or false, not $accelerated" >&2; usage 2 ;;
esac
if [ -z "$deb_url" ]; then
  [ -n "$ssh_from" ] || { echo "--ssh-from is required to copy the package (or give --deb-url)" >&2; usage 2; }
  if [ -z "$deb" ]; then
    for f in "$here"/../../target/debian/vxdecap_*.deb; do
      if [ -e "$f" ]; then deb=$(realpath "$f"); fi
    done
    [ -n "$deb" ] || [ "$dry_run" = 1 ] || { echo "no package: run ./scripts/package.sh or give --deb" >&2; exit 2; }
    deb=${deb:-target/debian/vxdecap_VERSION_amd64.deb}
  fi
fi
if [ -z "$ssh_key" ]; then
  for k in ~/.ssh/id_ed25519.pub ~/.ssh/id_rsa.pub; do
    if [ -r "$k" ]; then ssh_key=$k; break; fi
  done
  ssh_key=${ssh_key:-$HOME/.ssh/id_ed25519.pub}
fi
vnet=$prefix-vnet
collector=$prefix-collector
nsg=$prefix-collector-nsg
image=Debian:debian-12:12-gen2:latest

echo "#!/usr/bin/env bash"
echo "# Azure vTAP to a vxdecap collector: resource group $rg in $location"
echo "set -euo pipefail"

step "1. the vTAP commands (an az extension), the resource group and the VNet"
run az extension add --name virtual-network-tap --upgrade --yes
run az group create --name "$rg" --location "$location" --output none
run az network vnet create --resource-group "$rg" --name "$vnet" --address-prefixes 10.0.0.0/16 \
  --subnet-name snet-app --subnet-prefixes 10.0.1.0/24 --output none
run az network vnet subnet create --resource-group "$rg" --vnet-name "$vnet" --name snet-collector \
  --address-prefixes 10.0.2.0/24 --output none

step "2. the collector: VXLAN from the VNet, SSH from $ssh_from; Debian 12, cloud-init, Accelerated Networking $accelerated"
run az network nsg create --resource-group "$rg" --name "$nsg" --output none
run az network nsg rule create --resource-group "$rg" --nsg-name "$nsg" --name allow-vxlan --priority 100 \
  --direction Inbound --access Allow --protocol Udp --source-address-prefixes VirtualNetwork \
  --destination-port-ranges 4789 --output none
if [ -n "$ssh_from" ]; then
  run az network nsg rule create --resource-group "$rg" --nsg-name "$nsg" --name allow-ssh --priority 110 \
    --direction Inbound --access Allow --protocol Tcp --source-address-prefixes "$ssh_from" \
    --destination-port-ranges 22 --output none
fi
# The collector's cloud-init: deploy/cloud-init.yaml with this deployment's MTU and package URL,
# and behind an internal load balancer, its prober's address (Azure's 168.63.129.16).
health_from=""
if [ "$ilb" = 1 ]; then health_from=168.63.129.16; fi
custom_data=${TMPDIR:-/tmp}/$collector.cloud-init.yaml
run_to "$custom_data" sed -e "s|^      VXDECAP_MTU=.*|      VXDECAP_MTU=$mtu|" \
  -e "s|^      VXDECAP_DEB_URL=.*|      VXDECAP_DEB_URL=$deb_url|" \
  -e "s|^      VXDECAP_HEALTH_FROM=.*|      VXDECAP_HEALTH_FROM=$health_from|" \
  "$(realpath "$here/../cloud-init.yaml")"
run az vm create --resource-group "$rg" --name "$collector" --image "$image" --size "$size" \
  --vnet-name "$vnet" --subnet snet-collector --nsg "$nsg" --public-ip-sku Standard \
  --accelerated-networking "$accelerated" --admin-username "$admin" --ssh-key-values "$ssh_key" \
  --custom-data "$custom_data" --output none
capture collector_nic_id az vm show --resource-group "$rg" --name "$collector" \
  --query 'networkProfile.networkInterfaces[0].id' --output tsv

if [ ${#source_nics[@]} -eq 0 ]; then
  step "3. a source VM running nginx, in snet-app (no public address)"
  app_data=${TMPDIR:-/tmp}/$prefix-app.cloud-init.yaml
  run_to "$app_data" printf '#cloud-config\npackages:\n  - nginx\n'
  run az vm create --resource-group "$rg" --name "$prefix-app" --image "$image" --size Standard_B2s \
    --vnet-name "$vnet" --subnet snet-app --public-ip-address "" --nsg-rule NONE \
    --admin-username "$admin" --ssh-key-values "$ssh_key" --custom-data "$app_data" --output none
  capture app_nic_id az vm show --resource-group "$rg" --name "$prefix-app" \
    --query 'networkProfile.networkInterfaces[0].id' --output tsv
  capture app_nic_name az network nic show --ids "$app_nic_id" --query name --output tsv
  source_nics=("$app_nic_name")
else
  step "3. the NICs to mirror: ${source_nics[*]}"
fi

if [ "$ilb" = 1 ]; then
  step "4. the vTAP's destination: an internal load balancer's frontend, the collector in its pool"
  lb=$prefix-ilb
  run az network lb create --resource-group "$rg" --name "$lb" --sku Standard --vnet-name "$vnet" \
    --subnet snet-collector --frontend-ip-name vxlan-frontend --backend-pool-name collectors --output none
  # The probe asks vxdecap itself: /healthz answers 200 only while the capture takes traffic.
  # The collector serves it on 9419 to Azure's prober 168.63.129.16 alone (its cloud-init's
  # VXDECAP_HEALTH_FROM); the NSG's default AllowAzureLoadBalancerInBound lets the probe in.
  run az network lb probe create --resource-group "$rg" --lb-name "$lb" --name healthz --protocol Http \
    --port 9419 --path /healthz --output none
  run az network lb rule create --resource-group "$rg" --lb-name "$lb" --name vxlan --protocol Udp \
    --frontend-port 4789 --backend-port 4789 --frontend-ip-name vxlan-frontend \
    --backend-pool-name collectors --probe-name healthz --output none
  capture collector_nic_name az network nic show --ids "$collector_nic_id" --query name --output tsv
  capture collector_ipconfig_name az network nic show --ids "$collector_nic_id" \
    --query 'ipConfigurations[0].name' --output tsv
  run az network nic ip-config address-pool add --resource-group "$rg" --nic-name "$collector_nic_name" \
    --ip-config-name "$collector_ipconfig_name" --lb-name "$lb" --address-pool collectors --output none
  capture destination az network lb frontend-ip show --resource-group "$rg" --lb-name "$lb" \
    --name vxlan-frontend --query id --output tsv
else
  step "4. the vTAP's destination: the collector NIC's IP configuration"
  capture destination az network nic show --ids "$collector_nic_id" \
    --query 'ipConfigurations[0].id' --output tsv
fi
run az network vnet tap create --resource-group "$rg" --name "$prefix-vtap" --location "$location" \
  --destination "$destination" --port 4789 --output none
capture tap_id az network vnet tap show --resource-group "$rg" --name "$prefix-vtap" --query id --output tsv

step "5. a tap configuration on each NIC to mirror"
n=0
for nic in "${source_nics[@]}"; do
  n=$((n + 1))
  case $nic in
    /subscriptions/*)
      nic_rg=$(echo "$nic" | awk -F/ '{ for (i = 1; i < NF; i++) if (tolower($i) == "resourcegroups") print $(i + 1) }')
      nic_name=${nic##*/}
      ;;
    *) nic_rg=$rg; nic_name=$nic ;;
  esac
  run az network nic vtap-config create --resource-group "$nic_rg" --nic-name "$nic_name" \
    --vnet-tap "$tap_id" --name "$prefix-tap-$n" --output none
done

step "6. vxdecap on the collector"
capture collector_ip az vm show --show-details --resource-group "$rg" --name "$collector" \
  --query publicIps --output tsv
ssh_opts=(-o StrictHostKeyChecking=accept-new -o ConnectTimeout=20)
run ssh "${ssh_opts[@]}" "$admin@$collector_ip" cloud-init status --wait
if [ -z "$deb_url" ]; then
  run scp "${ssh_opts[@]}" "$deb" "$admin@$collector_ip:/tmp/vxdecap.deb"
  run ssh "${ssh_opts[@]}" "$admin@$collector_ip" sudo vxdecap-collector-setup --deb /tmp/vxdecap.deb
else
  run ssh "${ssh_opts[@]}" "$admin@$collector_ip" sudo systemctl --no-pager status 'vxdecap@*'
fi

step "done: watch it, and make traffic to mirror"
echo "# ssh $admin@$collector_ip vxdecap top                      # rates per queue and VNI"
echo "# ssh $admin@$collector_ip journalctl -u 'vxdecap@*' -f"
if [ -n "$app_nic_name" ]; then
  echo "# ssh $admin@$collector_ip curl -s http://10.0.1.4/ >/dev/null  # HTTP to the app VM (mirrored)"
fi
echo "# deploy/azure/deploy.sh --resource-group $rg --delete"
