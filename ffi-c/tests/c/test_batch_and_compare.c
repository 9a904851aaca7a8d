/*
 * From C: many namespaces deleted in one call, a stored network compared with a spec
 * (create-or-open, the stored spec, the differences), and host-local leases underlay cannot
 * take as its own (kept, listed, never handed out). As root, in namespaces this test makes.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "underlay.h"

#include "check.h"

/* Whether /run/netns/NAME exists. */
static int listed(const char *name) {
  char path[128];
  snprintf(path, sizeof path, "/run/netns/%s", name);
  return access(path, F_OK) == 0;
}

static void test_delete_many(void) {
  char names[5][64];
  const char *ptrs[5];
  for (int i = 0; i < 5; i++) {
    snprintf(names[i], sizeof names[i], "ulc-del-%d-%d", (int)getpid(), i);
    ptrs[i] = names[i];
    underlay_netns *ns = NULL;
    OK(underlay_netns_create(names[i], &ns));
    underlay_netns_free(ns);
    TRUE(listed(names[i]));
  }
  OK(underlay_netns_delete_many(ptrs, 3));
  TRUE(!listed(names[0]) && !listed(names[2]) && listed(names[3]));
  /* A missing one among others: the others go, the error names the missing one. */
  const char *again[] = {names[0], names[3]};
  EXPECT(underlay_netns_delete_many(again, 2), UNDERLAY_RESULT_NOT_FOUND, names[0]);
  TRUE(!listed(names[3]));
  const char *two_bad[] = {names[1], "a/b", names[4]};
  EXPECT(underlay_netns_delete_many(two_bad, 3), UNDERLAY_RESULT_MULTIPLE, "2 errors");
  TRUE(!listed(names[4]));
  EXPECT(underlay_netns_delete_many(NULL, 2), UNDERLAY_RESULT_NULL_PARAMETER, "`names`");
  const char *with_null[] = {NULL};
  EXPECT(underlay_netns_delete_many(with_null, 1), UNDERLAY_RESULT_NULL_PARAMETER, NULL);
  OK(underlay_netns_delete_many(NULL, 0));
}

static void test_compare(void) {
  char name[64], dir[] = "/tmp/ulc-cmp-XXXXXX";
  snprintf(name, sizeof name, "ulc-cmp-%d", (int)getpid());
  underlay_netns *ns = NULL;
  underlay_handle *h = NULL;
  underlay_link_builder *b = NULL;
  underlay_link *veth = NULL;
  underlay_networks *nets = NULL;
  underlay_network_spec *spec = NULL, *stored = NULL, *other = NULL;
  underlay_network *net = NULL, *again = NULL;
  underlay_string_list *diffs = NULL;
  if (mkdtemp(dir) == NULL || underlay_netns_create(name, &ns) != UNDERLAY_RESULT_OK) {
    FAIL("setup: %s", underlay_last_error_message());
    return;
  }
  OK(underlay_handle_for_netns(ns, &h));
  OK(underlay_link_builder_veth(h, "nic0", "nic0p", &b));
  OK(underlay_link_builder_set_up(b));
  OK(underlay_link_builder_execute(b, &veth));
  underlay_link_builder_free(b);
  underlay_link_free(veth);
  OK(underlay_networks_open(h, dir, &nets));
  OK(underlay_network_spec_macvlan("cmp", "nic0", "bridge", &spec));
  OK(underlay_network_spec_add_pool(spec, "10.34.0.0/24 gateway=10.34.0.1"));
  OK(underlay_network_spec_set_mtu(spec, 1400));
  OK(underlay_networks_create_or_open(nets, spec, &net));
  OK(underlay_networks_create_or_open(nets, spec, &again));
  underlay_network_free(again);
  OK(underlay_network_spec_of(net, &stored));
  OK(underlay_network_differences(net, stored, &diffs));
  TRUE(underlay_string_list_count(diffs) == 0);
  underlay_string_list_free(diffs);
  diffs = NULL;
  OK(underlay_network_spec_macvlan("cmp", "nic0", "vepa", &other));
  OK(underlay_network_spec_add_pool(other, "10.34.0.0/24 gateway=10.34.0.1"));
  OK(underlay_network_differences(net, other, &diffs));
  TRUE(underlay_string_list_count(diffs) == 2);
  TRUE(diffs != NULL && strstr(underlay_string_list_get(diffs, 0), "macvlan mode vepa") != NULL);
  TRUE(diffs != NULL && strcmp(underlay_string_list_get(diffs, 1),
                               "MTU: stored 1400, given the parent's") == 0);
  underlay_string_list_free(diffs);
  again = NULL;
  EXPECT(underlay_networks_create_or_open(nets, other, &again), UNDERLAY_RESULT_CONFLICT,
         "MTU: stored 1400");
  TRUE(again == NULL);
  EXPECT(underlay_network_differences(NULL, other, &diffs), UNDERLAY_RESULT_NULL_PARAMETER,
         "`network`");
  EXPECT(underlay_network_differences(net, NULL, &diffs), UNDERLAY_RESULT_NULL_PARAMETER,
         "`spec`");
  EXPECT(underlay_network_spec_of(net, NULL), UNDERLAY_RESULT_NULL_PARAMETER, "`spec_out`");
  OK(underlay_networks_delete(nets, "cmp"));
  underlay_network_spec_free(spec);
  underlay_network_spec_free(stored);
  underlay_network_spec_free(other);
  underlay_network_free(net);
  underlay_networks_free(nets);
  underlay_handle_free(h);
  underlay_netns_free(ns);
  underlay_netns_delete(name);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    FAIL("cannot remove %s", dir);
}

/* Writes a host-local lease file `dir/addr` holding `content`. */
static void lease_file(const char *dir, const char *addr, const char *content) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, addr);
  FILE *f = fopen(path, "w");
  if (f == NULL || fputs(content, f) < 0 || fclose(f) != 0)
    FAIL("cannot write %s", path);
}

static void test_foreign_leases(void) {
  char root[] = "/tmp/ulc-foreign-XXXXXX", dir[128], cmd[160];
  if (mkdtemp(root) == NULL) {
    FAIL("mkdtemp");
    return;
  }
  snprintf(dir, sizeof dir, "%s/mynet", root);
  snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
  if (system(cmd) != 0)
    FAIL("mkdir %s", dir);
  char long_id[301 + 8];
  memset(long_id, 'c', 300);
  strcpy(long_id + 300, "\r\neth0");
  lease_file(dir, "10.23.0.2", long_id);
  lease_file(dir, "10.99.0.7", "other\r\neth0");
  underlay_ipam_store *store = NULL;
  underlay_ipam_network *net = NULL;
  underlay_ipam *ipam = NULL;
  underlay_foreign_lease_list *list = NULL;
  underlay_lease *lease = NULL;
  OK(underlay_ipam_store_open_hostlocal(root, &store));
  OK(underlay_ipam_network_new("mynet", &net));
  OK(underlay_ipam_network_add_pool(net, "10.23.0.0/29"));
  OK(underlay_ipam_create(store, net, &ipam));
  OK(underlay_ipam_foreign_leases(ipam, &list));
  TRUE(underlay_foreign_lease_list_count(list) == 2);
  const char *a0 = underlay_foreign_lease_list_address(list, 0);
  const char *r0 = underlay_foreign_lease_list_reason(list, 0);
  const char *l0 = underlay_foreign_lease_list_location(list, 0);
  const char *r1 = underlay_foreign_lease_list_reason(list, 1);
  TRUE(a0 != NULL && strcmp(a0, "10.23.0.2") == 0);
  TRUE(r0 != NULL && strstr(r0, "256") != NULL);
  TRUE(l0 != NULL && strstr(l0, "mynet/10.23.0.2") != NULL);
  TRUE(r1 != NULL && strstr(r1, "outside every pool") != NULL);
  TRUE(underlay_foreign_lease_list_address(list, 2) == NULL);
  TRUE(underlay_foreign_lease_list_count(NULL) == 0);
  TRUE(underlay_foreign_lease_list_reason(NULL, 0) == NULL);
  underlay_foreign_lease_list_free(list);
  underlay_foreign_lease_list_free(NULL);
  EXPECT(underlay_ipam_allocate(ipam, "x", "eth0", "10.23.0.2", &lease),
         UNDERLAY_RESULT_ALREADY_EXISTS, "10.23.0.2");
  TRUE(lease == NULL);
  /* Next-fit over the /29 (.1 is the gateway): .3 to .6, never .2. */
  int handed = 0;
  for (int i = 0; i < 8; i++) {
    char id[16];
    snprintf(id, sizeof id, "c%d", i);
    lease = NULL;
    underlay_result got = underlay_ipam_allocate(ipam, id, "eth0", NULL, &lease);
    if (got == UNDERLAY_RESULT_POOL_EXHAUSTED)
      break;
    EXPECT(got, UNDERLAY_RESULT_OK, NULL);
    const char *addr = lease != NULL ? underlay_lease_address(lease, 0) : NULL;
    TRUE(addr != NULL && strncmp(addr, "10.23.0.2/", 10) != 0);
    underlay_lease_free(lease);
    handed++;
  }
  TRUE(handed == 4);
  EXPECT(underlay_ipam_foreign_leases(NULL, &list), UNDERLAY_RESULT_NULL_PARAMETER, "`ipam`");
  EXPECT(underlay_ipam_foreign_leases(ipam, NULL), UNDERLAY_RESULT_NULL_PARAMETER, "`list_out`");
  underlay_ipam_free(ipam);
  underlay_ipam_network_free(net);
  underlay_ipam_store_free(store);
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  if (system(cmd) != 0)
    FAIL("cannot remove %s", root);
}

/* Shared reservations: two holders; allocations pass the address by; one unhold keeps it, the
   last frees it; the list shows owner and holders. */
static void test_holds(void) {
  underlay_ipam_store *store = NULL;
  underlay_ipam_network *net = NULL;
  underlay_ipam *ipam = NULL;
  underlay_string_list *holders = NULL;
  underlay_hold_list *list = NULL;
  underlay_lease *lease = NULL;
  bool released = true;
  OK(underlay_ipam_store_new_memory(&store));
  OK(underlay_ipam_network_new("held", &net));
  OK(underlay_ipam_network_add_pool(net, "10.24.0.0/30 gateway=none"));
  OK(underlay_ipam_create(store, net, &ipam));
  OK(underlay_ipam_hold(ipam, "docker-gateway", "gw", "10.24.0.1", "host1", &holders));
  underlay_string_list_free(holders);
  holders = NULL;
  OK(underlay_ipam_hold(ipam, "docker-gateway", "gw", "10.24.0.1", "host2", &holders));
  TRUE(underlay_string_list_count(holders) == 2);
  TRUE(strcmp(or_empty(underlay_string_list_get(holders, 1)), "host2") == 0);
  underlay_string_list_free(holders);
  holders = NULL;
  EXPECT(underlay_ipam_hold(ipam, "other", "eth0", "10.24.0.1", "host1", &holders),
         UNDERLAY_RESULT_ALREADY_EXISTS, "10.24.0.1");
  TRUE(holders == NULL);
  OK(underlay_ipam_holds(ipam, &list));
  TRUE(underlay_hold_list_count(list) == 1);
  TRUE(strcmp(or_empty(underlay_hold_list_address(list, 0)), "10.24.0.1") == 0);
  TRUE(strcmp(or_empty(underlay_hold_list_container_id(list, 0)), "docker-gateway") == 0);
  TRUE(strcmp(or_empty(underlay_hold_list_ifname(list, 0)), "gw") == 0);
  TRUE(underlay_hold_list_holder_count(list, 0) == 2);
  TRUE(strcmp(or_empty(underlay_hold_list_holder(list, 0, 0)), "host1") == 0);
  TRUE(underlay_hold_list_holder(list, 0, 2) == NULL && underlay_hold_list_address(list, 1) == NULL);
  TRUE(underlay_hold_list_count(NULL) == 0);
  underlay_hold_list_free(list);
  underlay_hold_list_free(NULL);
  /* The /30 has .1 and .2: the one allocation gets .2, the next finds the pool full. */
  OK(underlay_ipam_allocate(ipam, "c1", "eth0", NULL, &lease));
  TRUE(strcmp(or_empty(underlay_lease_address(lease, 0)), "10.24.0.2/30") == 0);
  underlay_lease_free(lease);
  lease = NULL;
  OK(underlay_ipam_release(ipam, "c1", "eth0", &released));
  TRUE(released);
  OK(underlay_ipam_unhold(ipam, "docker-gateway", "gw", "host1", &released, &holders));
  TRUE(!released && underlay_string_list_count(holders) == 1);
  underlay_string_list_free(holders);
  holders = NULL;
  OK(underlay_ipam_unhold(ipam, "docker-gateway", "gw", "host2", &released, &holders));
  TRUE(released && underlay_string_list_count(holders) == 0);
  underlay_string_list_free(holders);
  OK(underlay_ipam_allocate(ipam, "c2", "eth0", "10.24.0.1", &lease));
  underlay_lease_free(lease);
  NUL(underlay_ipam_hold(ipam, "c", "eth0", "10.24.0.1", NULL, &holders), "holder");
  underlay_ipam_free(ipam);
  underlay_ipam_network_free(net);
  underlay_ipam_store_free(store);
}

int main(void) {
  test_foreign_leases();
  test_holds();
  if (geteuid() != 0) {
    printf("SKIPPED: test_batch_and_compare needs root (namespaces); CI runs it as root\n");
    return 0;
  }
  test_delete_many();
  test_compare();
  printf("test_batch_and_compare: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
