// The order of member names wherever the manager sorts them (who campaigns
// first, which member a shrink removes, the hosts block, discovery records):
// UTF-16 code-unit order, as Go's string comparison in kOps' etcd-manager, and
// the same on every machine. Not localeCompare: that loads ICU's collation
// data, about 2 MiB that stayed resident in every manager (README, "Memory").
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
