/*
 * S3 of SCENARIOS.md: the host talking to its own containers.
 * A macvlan child cannot reach its parent: the host (a namespace with `ens33` on the LAN,
 * 192.168.136.10/24) cannot ping its container at 192.168.136.240 (containers are kept out of
 * the LAN's DHCP range with range=192.168.136.240/28). Host access adds a bridge-mode macvlan
 * shim `macvlan0-host` on the same parent, up, with a host route to the container through it:
 * now the ping answers. Run as root; everything lives in namespaces made here.
 */
#include "lab.h"

int main(void) {
  int ok = 1;
  underlay_netns *hn = NULL;
  underlay_handle *hh = NULL;
  underlay_networks *nets = NULL;
  underlay_network_spec *spec = NULL;
  underlay_network *net = NULL;
  underlay_link *shim_link = NULL;
  char *shim = NULL;
  lab_init("s3");
  printf("S3: the host talking to its own macvlan containers (underlay %s)\n",
         underlay_version());
  underlay_handle *sw = lab_switch();
  lab_ns("host", &hn, &hh);
  cable(sw, "p1", hn, hh, "ens33");
  check(underlay_handle_address_add(hh, "ens33", "192.168.136.10/24"), "host address");
  check(underlay_networks_open(hh, lab_dir("host"), &nets), "open networks");
  check(underlay_network_spec_macvlan("macnet", "ens33", "bridge", &spec), "spec");
  check(underlay_network_spec_add_pool(
            spec, "192.168.136.0/24 gateway=192.168.136.1 range=192.168.136.240/28"),
        "pool");
  check(underlay_networks_create(nets, spec, &net), "create macnet");
  underlay_netns *c = container(net, "web", "192.168.136.240");

  printf("1. without host access (a macvlan child never talks to its parent):\n");
  ok &= ping_expect(hn, "host 192.168.136.10", "192.168.136.240", 0);
  ok &= ping_expect(c, "web 192.168.136.240", "192.168.136.10", 0);

  check(underlay_network_enable_host_access(net, "macvlan0-host", false, "endpoints", &shim),
        "host access");
  check(underlay_handle_link_get(hh, shim, &shim_link), "read the shim");
  printf("2. shim `%s` (%s, mode %s, %s) on ens33, host route to the container through it:\n",
         shim, underlay_link_kind(shim_link), underlay_link_mode(shim_link),
         underlay_link_is_up(shim_link) ? "up" : "down");
  ok &= ping_expect(hn, "host 192.168.136.10", "192.168.136.240", 1);
  ok &= ping_expect(c, "web 192.168.136.240", "192.168.136.10", 1);

  check(underlay_network_disable_host_access(net), "disable host access");
  check(underlay_network_disconnect(net, "web", "eth0"), "disconnect");
  check(underlay_networks_delete(nets, "macnet"), "delete network");
  printf("3. shim, endpoint and network removed\n");

  underlay_string_free(shim);
  underlay_link_free(shim_link);
  underlay_netns_free(c);
  underlay_network_free(net);
  underlay_network_spec_free(spec);
  underlay_networks_free(nets);
  underlay_handle_free(hh);
  underlay_netns_free(hn);
  underlay_handle_free(sw);
  lab_cleanup();
  printf("%s\n", ok ? "S3: all results as the scenario says" : "S3: !! some results differ");
  return ok ? 0 : 1;
}
