/*
 * C tests of values without the kernel: pools read field by field, VLAN files rendered for the
 * distribution's tools, the IPAM's name, pools, boot ids, stale leases, several addresses in
 * one allocation. Run under ASan/UBSan by `cargo xtask c-test`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "underlay.h"

#include "check.h"

static void test_pools(void) {
  underlay_pool *p = NULL, *q = NULL, *v6 = NULL;
  bool in = false;
  OK(underlay_pool_parse("172.16.10.0/24 gateway=172.16.10.1 range=172.16.10.128/25 "
                         "reserve=printer=172.16.10.21",
                         &p));
  if (p == NULL)
    return;
  TRUE(strcmp(underlay_pool_subnet(p), "172.16.10.0/24") == 0);
  TRUE(strcmp(underlay_pool_gateway(p), "172.16.10.1") == 0);
  TRUE(underlay_pool_range_count(p) == 1 && strcmp(underlay_pool_range(p, 0), "172.16.10.128/25") == 0);
  TRUE(underlay_pool_range(p, 1) == NULL);
  TRUE(underlay_pool_reserved_count(p) == 1 &&
       strcmp(underlay_pool_reserved_name(p, 0), "printer") == 0 &&
       strcmp(underlay_pool_reserved_address(p, 0), "172.16.10.21") == 0);
  /* The range's 128 addresses but its broadcast address. */
  TRUE(underlay_pool_capacity(p) == 127 && !underlay_pool_is_ipv6(p));
  OK(underlay_pool_contains(p, "172.16.10.200", &in));
  TRUE(in);
  OK(underlay_pool_contains(p, "172.16.11.1", &in));
  TRUE(!in);
  EXPECT(underlay_pool_contains(p, "nope", &in), UNDERLAY_RESULT_INVALID_ARGUMENT, "nope");
  EXPECT(underlay_pool_contains(p, "172.16.10.1", NULL), UNDERLAY_RESULT_NULL_PARAMETER,
         "`contains_out`");
  /* The text reads back as the same pool. */
  OK(underlay_pool_parse(underlay_pool_string(p), &q));
  TRUE(q != NULL && strcmp(underlay_pool_string(q), underlay_pool_string(p)) == 0);
  TRUE(underlay_pool_overlaps(p, q) && !underlay_pool_overlaps(p, NULL));
  OK(underlay_pool_parse("fd00:10::/64", &v6));
  TRUE(v6 != NULL && underlay_pool_is_ipv6(v6) && strcmp(underlay_pool_gateway(v6), "fd00:10::1") == 0 &&
       underlay_pool_capacity(v6) == UINT64_MAX - 1 && !underlay_pool_overlaps(p, v6));
  EXPECT(underlay_pool_parse("10.0.0.0/33", &q), UNDERLAY_RESULT_INVALID_ARGUMENT, "33");
  EXPECT(underlay_pool_parse(NULL, &q), UNDERLAY_RESULT_NULL_PARAMETER, "`text`");
  underlay_pool_free(p);
  underlay_pool_free(q);
  underlay_pool_free(v6);
  underlay_pool_free(NULL);
  TRUE(underlay_pool_subnet(NULL) == NULL && underlay_pool_capacity(NULL) == 0);
}

/* A pool over two subnets (a CNI host-local range set): built from two pools or parsed from
 * text, read segment by segment, each address's gateway its own segment's. */
static void test_pool_segments(void) {
  underlay_pool *a = NULL, *b = NULL, *set = NULL, *parsed = NULL, *seg = NULL, *v6 = NULL;
  char *gw = NULL;
  OK(underlay_pool_parse("10.9.0.0/29 range=10.9.0.5-10.9.0.6", &a));
  OK(underlay_pool_parse("10.1.0.0/30 gateway=none", &b));
  OK(underlay_pool_then(a, b, &set));
  TRUE(set != NULL &&
       strcmp(underlay_pool_string(set), "10.9.0.0/29 gateway=10.9.0.1 range=10.9.0.5-10.9.0.6 + "
                                         "10.1.0.0/30 gateway=none") == 0);
  TRUE(underlay_pool_capacity(set) == 4 && underlay_pool_segment_count(set) == 2 &&
       underlay_pool_segment_count(a) == 1 && underlay_pool_segment_count(NULL) == 0);
  /* The scalar getters read the first segment. */
  TRUE(strcmp(underlay_pool_subnet(set), "10.9.0.0/29") == 0);
  OK(underlay_pool_segment(set, 1, &seg));
  TRUE(seg != NULL && strcmp(underlay_pool_subnet(seg), "10.1.0.0/30") == 0 &&
       underlay_pool_gateway(seg) == NULL && underlay_pool_capacity(seg) == 2);
  underlay_pool_free(seg);
  seg = NULL;
  EXPECT(underlay_pool_segment(set, 2, &seg), UNDERLAY_RESULT_INVALID_ARGUMENT, "no segment 2");
  TRUE(seg == NULL);
  EXPECT(underlay_pool_segment(set, 0, NULL), UNDERLAY_RESULT_NULL_PARAMETER, "segment_out");
  OK(underlay_pool_gateway_of(set, "10.9.0.5", &gw));
  TRUE(gw != NULL && strcmp(gw, "10.9.0.1") == 0);
  underlay_string_free(gw);
  gw = (char *)"untouched";
  OK(underlay_pool_gateway_of(set, "10.1.0.2", &gw));
  TRUE(gw == NULL);
  OK(underlay_pool_gateway_of(set, "192.0.2.1", &gw));
  TRUE(gw == NULL);
  EXPECT(underlay_pool_gateway_of(set, "x", &gw), UNDERLAY_RESULT_INVALID_ARGUMENT, "`x`");
  /* Text gives the same pool; overlaps and contains see every segment. */
  OK(underlay_pool_parse(underlay_pool_string(set), &parsed));
  TRUE(parsed != NULL && strcmp(underlay_pool_string(parsed), underlay_pool_string(set)) == 0);
  bool in = false;
  OK(underlay_pool_contains(set, "10.1.0.1", &in));
  TRUE(in);
  TRUE(underlay_pool_overlaps(set, b) && underlay_pool_overlaps(b, set));
  /* Overlapping or mixed-family segments are refused, nothing made. */
  underlay_pool *bad = NULL;
  EXPECT(underlay_pool_then(set, b, &bad), UNDERLAY_RESULT_OVERLAP, "10.1.0.0/30");
  TRUE(bad == NULL);
  OK(underlay_pool_parse("fd00:9::/64", &v6));
  EXPECT(underlay_pool_then(a, v6, &bad), UNDERLAY_RESULT_INVALID_ARGUMENT, "IPv6");
  EXPECT(underlay_pool_then(NULL, b, &bad), UNDERLAY_RESULT_NULL_PARAMETER, "`first`");
  EXPECT(underlay_pool_then(a, b, NULL), UNDERLAY_RESULT_NULL_PARAMETER, "pool_out");
  EXPECT(underlay_pool_parse("10.1.0.0/24 + 10.1.0.128/25", &bad), UNDERLAY_RESULT_OVERLAP,
         "overlap");
  TRUE(bad == NULL);
  underlay_pool_free(a);
  underlay_pool_free(b);
  underlay_pool_free(set);
  underlay_pool_free(parsed);
  underlay_pool_free(v6);
}

static void test_render_vlan(void) {
  underlay_export *e = NULL;
  OK(underlay_render_vlan("networkd", "ens192.20", "ens192", 20, &e));
  TRUE(underlay_export_count(e) >= 2);
  int netdev = 0;
  for (size_t i = 0; i < underlay_export_count(e); i++) {
    const char *path = underlay_export_path(e, i), *content = underlay_export_content(e, i);
    TRUE(path != NULL && content != NULL && strncmp(path, "/etc/systemd/network/", 21) == 0);
    if (strstr(path, ".netdev") != NULL) {
      netdev++;
      TRUE(strstr(content, "Kind=vlan") != NULL && strstr(content, "Id=20") != NULL);
    }
  }
  TRUE(netdev == 1 && underlay_export_path(e, 99) == NULL);
  underlay_export_free(e);
  e = NULL;
  OK(underlay_render_vlan("ifupdown", "ens192.20", "ens192", 20, &e));
  TRUE(underlay_export_count(e) == 1 && strstr(underlay_export_content(e, 0), "ens192.20") != NULL);
  underlay_export_free(e);
  e = NULL;
  EXPECT(underlay_render_vlan("netplan", "ens192.20", "ens192", 20, &e),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "netplan");
  EXPECT(underlay_render_vlan("ifcfg", "ens192.20", "ens192", 4095, &e),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "4095");
  EXPECT(underlay_render_vlan("ifcfg", "bad/name", "ens192", 20, &e),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "bad/name");
  TRUE(e == NULL);
  underlay_export_free(NULL);
  TRUE(underlay_export_count(NULL) == 0);
}

static void test_ipam(void) {
  underlay_ipam_store *st = NULL;
  underlay_ipam_network *def = NULL;
  underlay_ipam *ipam = NULL;
  underlay_lease *l = NULL;
  underlay_lease_list *list = NULL;
  char *boot = NULL;
  OK(underlay_ipam_store_new_memory(&st));
  OK(underlay_ipam_network_new("dual", &def));
  OK(underlay_ipam_network_add_pool(def, "10.5.0.0/24 gateway=10.5.0.1"));
  OK(underlay_ipam_network_add_pool(def, "fd00:5::/64"));
  OK(underlay_ipam_create(st, def, &ipam));
  if (ipam == NULL)
    goto out;
  TRUE(strcmp(underlay_ipam_name(ipam), "dual") == 0 && underlay_ipam_pool_count(ipam) == 2);
  TRUE(strncmp(underlay_ipam_pool(ipam, 0), "10.5.0.0/24", 11) == 0 &&
       underlay_ipam_pool(ipam, 2) == NULL);

  /* Two given addresses, one per pool, in one allocation. */
  {
    const char *ips[] = {"10.5.0.7", "fd00:5::7"};
    OK(underlay_ipam_allocate_ips(ipam, "c1", "eth0", ips, 2, &l));
    TRUE(underlay_lease_address_count(l) == 2);
    TRUE(strcmp(underlay_lease_address(l, 0), "10.5.0.7/24") == 0 &&
         strcmp(underlay_lease_address(l, 1), "fd00:5::7/64") == 0);
    underlay_lease_free(l);
    l = NULL;
    const char *outside[] = {"10.6.0.7"};
    EXPECT(underlay_ipam_allocate_ips(ipam, "c2", "eth0", outside, 1, &l),
           UNDERLAY_RESULT_INVALID_ARGUMENT, "10.6.0.7");
    EXPECT(underlay_ipam_allocate_ips(ipam, "c2", "eth0", NULL, (size_t)1 << 40, &l),
           UNDERLAY_RESULT_NULL_PARAMETER, "`ips`");
    TRUE(l == NULL);
    OK(underlay_ipam_allocate_ips(ipam, "c2", "eth0", NULL, 0, &l));
    TRUE(underlay_lease_address_count(l) == 2);
    underlay_lease_free(l);
    l = NULL;
  }

  /* Boot ids: this boot's, a stamp, stale leases. */
  OK(underlay_current_boot_id(&boot));
  TRUE(boot != NULL && strlen(boot) == 36);
  {
    char *mine = underlay_ipam_boot_id(ipam);
    TRUE(mine != NULL && boot != NULL && strcmp(mine, boot) == 0);
    underlay_string_free(mine);
  }
  OK(underlay_ipam_set_boot_id(ipam, "an-earlier-boot"));
  OK(underlay_ipam_allocate(ipam, "old", "eth0", NULL, &l));
  TRUE(strcmp(underlay_lease_boot_id(l), "an-earlier-boot") == 0);
  underlay_lease_free(l);
  l = NULL;
  EXPECT(underlay_ipam_set_boot_id(ipam, "has space"), UNDERLAY_RESULT_INVALID_ARGUMENT, "boot id");
  OK(underlay_ipam_set_boot_id(ipam, boot));
  OK(underlay_ipam_stale(ipam, &list));
  TRUE(underlay_lease_list_count(list) == 1 &&
       strcmp(underlay_lease_container_id(underlay_lease_list_get(list, 0)), "old") == 0);
  underlay_lease_list_free(list);
  OK(underlay_ipam_set_boot_id(ipam, NULL));
  {
    char *none = underlay_ipam_boot_id(ipam);
    TRUE(none == NULL);
  }
  OK(underlay_ipam_stale(ipam, &list)); /* no boot id of its own: nothing is stale */
  TRUE(underlay_lease_list_count(list) == 0);
  underlay_lease_list_free(list);
  TRUE(underlay_lease_boot_id(NULL) == NULL && underlay_ipam_name(NULL) == NULL);
out:
  underlay_string_free(boot);
  underlay_ipam_free(ipam);
  underlay_ipam_network_free(def);
  underlay_ipam_store_free(st);
}

int main(void) {
  test_pools();
  test_pool_segments();
  test_render_vlan();
  test_ipam();
  printf("test_values: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
