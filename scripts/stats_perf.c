/* Times stats_compute/stats_compare on a synthetic snapshot: 1,000,000 traces,
 * 100,000 tracebacks of 5 frames, 1000 lines in 100 files.
 * Build: make && gcc -O2 -Iuser scripts/stats_perf.c build/user/snapshot.o \
 *        build/user/stats.o -o build/stats_perf */
#include <stdio.h>
#include <time.h>
#include "snapshot.h"
#include "stats.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
int main(void){
	struct snapshot *s=snapshot_new(); char fn[64]; uint32_t fr[1000];
	double t0=now();
	for(int i=0;i<1000;i++){snprintf(fn,64,"/src/file%d.c",i%100);fr[i]=snapshot_intern_frame(s,fn,i,"f");}
	uint32_t tb[100000];
	for(int t=0;t<100000;t++){uint32_t ids[5];for(int k=0;k<5;k++)ids[k]=fr[k==0?t%1000:k==1?(t/1000)%1000:(t*7+k*131)%1000];tb[t]=snapshot_intern_traceback(s,ids,5,5);}
	for(int i=0;i<1000000;i++) snapshot_add_trace(s,0x1000+i*16ull,16+i%1000,0,tb[(i*2654435761u)%100000]);
	double t1=now(); printf("build: %.3f s, %u tracebacks, %lu traces\n",t1-t0,s->ntracebacks,(unsigned long)s->ntraces);
	const char*names[]={"filename","lineno","traceback"};
	for(int k=0;k<3;k++)for(int c=0;c<2;c++){ if(k==2&&c)continue; struct stats_list l; double a=now(); int e=stats_compute(s,k,c,&l); double b=now();
	 printf("stats_compute %s%s: %.3f s, %zu groups (err %d)\n",names[k],c?" cumulative":"",b-a,l.n,e); stats_list_free(&l);}
	struct stats_list l; double a=now(); stats_compare(s,s,STATS_KEY_TRACEBACK,0,&l); printf("stats_compare traceback: %.3f s, %zu\n",now()-a,l.n); stats_list_free(&l);
	snapshot_free(s); return 0;}
