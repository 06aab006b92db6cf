/* afalg-kat: one AES-CBC encryption through the kernel's AF_ALG socket
 * interface, with the algorithm (or a specific driver, e.g.
 * "virtio_crypto_aes_cbc") named on the command line. Prints the ciphertext
 * in hex. Used by the guest agent to check that virtio-crypto requests reach
 * the device. Usage: afalg-kat ALG KEYHEX IVHEX PLAINHEX */
#include <linux/if_alg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SOL_ALG
#define SOL_ALG 279
#endif

static int unhex(const char *s, unsigned char *out, size_t max) {
  size_t n = strlen(s);
  if (n % 2 || n / 2 > max) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (unsigned char)v;
  }
  return (int)(n / 2);
}

int main(int argc, char **argv) {
  unsigned char key[64], iv[16], pt[4096], ct[4096];
  if (argc != 5) {
    fprintf(stderr, "usage: afalg-kat ALG KEYHEX IVHEX PLAINHEX\n");
    return 2;
  }
  int klen = unhex(argv[2], key, sizeof key);
  int ivlen = unhex(argv[3], iv, sizeof iv);
  int plen = unhex(argv[4], pt, sizeof pt);
  if (klen <= 0 || ivlen != 16 || plen <= 0) {
    fprintf(stderr, "afalg-kat: bad hex argument\n");
    return 2;
  }
  struct sockaddr_alg sa = {.salg_family = AF_ALG};
  strcpy((char *)sa.salg_type, "skcipher");
  strncpy((char *)sa.salg_name, argv[1], sizeof sa.salg_name - 1);
  int tfm = socket(AF_ALG, SOCK_SEQPACKET, 0);
  if (tfm < 0 || bind(tfm, (struct sockaddr *)&sa, sizeof sa) != 0) {
    perror("afalg-kat: bind");
    return 1;
  }
  if (setsockopt(tfm, SOL_ALG, ALG_SET_KEY, key, (socklen_t)klen) != 0) {
    perror("afalg-kat: setkey");
    return 1;
  }
  int op = accept(tfm, NULL, 0);
  if (op < 0) {
    perror("afalg-kat: accept");
    return 1;
  }
  char cbuf[CMSG_SPACE(4) + CMSG_SPACE(sizeof(struct af_alg_iv) + 16)];
  memset(cbuf, 0, sizeof cbuf);
  struct iovec io = {.iov_base = pt, .iov_len = (size_t)plen};
  struct msghdr msg = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf,
                       .msg_controllen = sizeof cbuf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_ALG;
  c->cmsg_type = ALG_SET_OP;
  c->cmsg_len = CMSG_LEN(4);
  *(unsigned *)CMSG_DATA(c) = ALG_OP_ENCRYPT;
  c = CMSG_NXTHDR(&msg, c);
  c->cmsg_level = SOL_ALG;
  c->cmsg_type = ALG_SET_IV;
  c->cmsg_len = CMSG_LEN(sizeof(struct af_alg_iv) + 16);
  struct af_alg_iv *aiv = (struct af_alg_iv *)CMSG_DATA(c);
  aiv->ivlen = 16;
  memcpy(aiv->iv, iv, 16);
  if (sendmsg(op, &msg, 0) != plen) {
    perror("afalg-kat: sendmsg");
    return 1;
  }
  if (read(op, ct, (size_t)plen) != plen) {
    perror("afalg-kat: read");
    return 1;
  }
  for (int i = 0; i < plen; i++) printf("%02x", ct[i]);
  printf("\n");
  return 0;
}
