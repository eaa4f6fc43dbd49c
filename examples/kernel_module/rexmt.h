/*
 * rexmt.h -- the interface of the example kernel module (rexmt.c): a
 * TCP-like retransmit and keepalive timer set for a few connections.  The
 * driver (driver.c) calls it; it is the same for every KPI it is built for.
 */
#ifndef REXMT_H
#define REXMT_H

void rexmt_load(int nconn); /* allocates nconn closed connections */
void rexmt_open(int id);    /* connection id is up: keepalive starts */
void rexmt_send(int id);    /* a segment is sent: retransmit timer starts */
void rexmt_ack(int id);     /* everything sent is acknowledged */
void rexmt_close(int id);   /* the peer closes: timers stop */
void rexmt_unload(void);    /* drains every timer and frees the module */

#endif
