#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elfsym.h"

struct elfsym_file {
	int fd;
	Elf *elf;
};

int elfsym_open(const char *path, struct elfsym_file **out)
{
	struct elfsym_file *f;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		int err = -errno;

		free(f);
		return err;
	}
	f->elf = elf_begin(f->fd, ELF_C_READ_MMAP, NULL);
	if (!f->elf || elf_kind(f->elf) != ELF_K_ELF) {
		elfsym_close(f);
		return -ENOEXEC;
	}
	*out = f;
	return 0;
}

void elfsym_close(struct elfsym_file *f)
{
	if (!f)
		return;
	if (f->elf)
		elf_end(f->elf);
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}

static int vaddr_to_offset(struct elfsym_file *f, uint64_t vaddr, uint64_t *off, uint64_t *avail)
{
	size_t n, i;

	if (elf_getphdrnum(f->elf, &n))
		return -ENOEXEC;
	for (i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(f->elf, i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_filesz) {
			*off = vaddr - ph.p_vaddr + ph.p_offset;
			if (avail)
				*avail = ph.p_vaddr + ph.p_filesz - vaddr;
			return 0;
		}
	}
	return -ENOENT;
}

static int lookup_in(struct elfsym_file *f, Elf_Scn *scn, GElf_Shdr *sh, const char *name,
		     int type, struct elfsym *out)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t len = strlen(name), i, n;

	if (!data || !sh->sh_entsize)
		return -ENOENT;
	n = sh->sh_size / sh->sh_entsize;
	for (i = 0; i < n; i++) {
		GElf_Sym sym;
		const char *s;

		if (!gelf_getsym(data, i, &sym) || GELF_ST_TYPE(sym.st_info) != type ||
		    sym.st_shndx == SHN_UNDEF || !sym.st_value)
			continue;
		s = elf_strptr(f->elf, sh->sh_link, sym.st_name);
		if (!s || strncmp(s, name, len) || (s[len] && s[len] != '@'))
			continue;
		out->vaddr = sym.st_value;
		out->size = sym.st_size;
		out->file_offset = 0;
		if (type != STT_FUNC)
			return 0; /* data may live in .bss: no file offset */
		return vaddr_to_offset(f, sym.st_value, &out->file_offset, NULL);
	}
	return -ENOENT;
}

static int lookup_typed(struct elfsym_file *f, const char *name, int type, struct elfsym *out)
{
	static const Elf64_Word types[] = {SHT_SYMTAB, SHT_DYNSYM};
	size_t t;

	for (t = 0; t < 2; t++) {
		Elf_Scn *scn = NULL;

		while ((scn = elf_nextscn(f->elf, scn))) {
			GElf_Shdr sh;

			if (!gelf_getshdr(scn, &sh) || sh.sh_type != types[t])
				continue;
			if (!lookup_in(f, scn, &sh, name, type, out))
				return 0;
		}
	}
	return -ENOENT;
}

int elfsym_lookup(struct elfsym_file *f, const char *name, struct elfsym *out)
{
	return lookup_typed(f, name, STT_FUNC, out);
}

int elfsym_lookup_object(struct elfsym_file *f, const char *name, struct elfsym *out)
{
	return lookup_typed(f, name, STT_OBJECT, out);
}

int elfsym_read(struct elfsym_file *f, uint64_t vaddr, void *buf, uint64_t size)
{
	uint64_t off, avail;
	ssize_t n;

	if (vaddr_to_offset(f, vaddr, &off, &avail) || avail < size)
		return -ENOENT;
	n = pread(f->fd, buf, size, (off_t)off);
	if (n < 0)
		return -errno;
	return (uint64_t)n == size ? 0 : -EIO;
}

uint64_t elfsym_first_load_vaddr(struct elfsym_file *f)
{
	size_t n, i;

	if (elf_getphdrnum(f->elf, &n))
		return 0;
	for (i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(f->elf, i, &ph) && ph.p_type == PT_LOAD)
			return ph.p_vaddr & ~(uint64_t)0xfff;
	}
	return 0;
}

bool elfsym_has_interp(struct elfsym_file *f)
{
	size_t n, i;

	if (elf_getphdrnum(f->elf, &n))
		return false;
	for (i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(f->elf, i, &ph) && ph.p_type == PT_INTERP)
			return true;
	}
	return false;
}

int elfsym_needed(struct elfsym_file *f, void (*cb)(const char *name, void *arg), void *arg,
		  char *runpath, size_t runpath_len)
{
	Elf_Scn *scn = NULL;

	if (runpath_len)
		runpath[0] = '\0';
	while ((scn = elf_nextscn(f->elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *data;
		size_t i;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNAMIC || !sh.sh_entsize)
			continue;
		data = elf_getdata(scn, NULL);
		for (i = 0; data && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Dyn dyn;
			const char *s;

			if (!gelf_getdyn(data, (int)i, &dyn))
				break;
			if (dyn.d_tag != DT_NEEDED && dyn.d_tag != DT_RUNPATH && dyn.d_tag != DT_RPATH)
				continue;
			s = elf_strptr(f->elf, sh.sh_link, dyn.d_un.d_val);
			if (!s)
				continue;
			if (dyn.d_tag == DT_NEEDED) {
				if (cb)
					cb(s, arg);
			}
			else if (runpath_len)
				snprintf(runpath, runpath_len, "%s", s);
		}
		return 0;
	}
	return -ENOENT;
}

int elfsym_import_slots(struct elfsym_file *f, const char *name, uint64_t *slots, int max)
{
	Elf_Scn *scn = NULL;
	int n = 0;

	while ((scn = elf_nextscn(f->elf, scn))) {
		Elf_Scn *symscn;
		Elf_Data *data, *syms;
		GElf_Shdr sh, symsh;
		size_t i;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || !sh.sh_entsize)
			continue;
		symscn = elf_getscn(f->elf, sh.sh_link);
		if (!symscn || !gelf_getshdr(symscn, &symsh) || symsh.sh_type != SHT_DYNSYM)
			continue;
		data = elf_getdata(scn, NULL);
		syms = elf_getdata(symscn, NULL);
		for (i = 0; data && syms && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Rela r;
			GElf_Sym s;
			const char *sname;
			unsigned type;

			if (!gelf_getrela(data, (int)i, &r))
				break;
			type = GELF_R_TYPE(r.r_info);
			if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
				continue;
			if (!gelf_getsym(syms, (int)GELF_R_SYM(r.r_info), &s))
				continue;
			sname = elf_strptr(f->elf, symsh.sh_link, s.st_name);
			if (!sname || strcmp(sname, name))
				continue;
			if (n < max)
				slots[n] = r.r_offset;
			n++;
		}
	}
	return n < max ? n : max;
}

int elfsym_code_sections(struct elfsym_file *f,
			 int (*cb)(const char *name, uint64_t vaddr, const uint8_t *code,
				   size_t size, void *arg),
			 void *arg)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;
	int err = 0;

	if (elf_getshdrstrndx(f->elf, &shstrndx))
		return -ENOEXEC;
	while (!err && (scn = elf_nextscn(f->elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *data;
		const char *name;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS ||
		    !(sh.sh_flags & SHF_EXECINSTR))
			continue;
		name = elf_strptr(f->elf, shstrndx, sh.sh_name);
		data = elf_getdata(scn, NULL);
		if (!data || !data->d_buf || data->d_size != sh.sh_size)
			continue;
		err = cb(name ? name : "", sh.sh_addr, data->d_buf, data->d_size, arg);
	}
	return err;
}

/* The executable PT_LOAD segment holding file offset off: 0 or -ENOENT. */
static int exec_phdr(struct elfsym_file *f, uint64_t off, GElf_Phdr *out)
{
	size_t n;

	if (elf_getphdrnum(f->elf, &n))
		return -ENOENT;
	for (size_t i = 0; i < n && i < 4096; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(f->elf, (int)i, &ph) || ph.p_type != PT_LOAD ||
		    !(ph.p_flags & PF_X))
			continue;
		if (off >= ph.p_offset && off - ph.p_offset < ph.p_filesz) {
			*out = ph;
			return 0;
		}
	}
	return -ENOENT;
}

int elfsym_exec_vaddr(struct elfsym_file *f, uint64_t off, uint64_t *vaddr)
{
	GElf_Phdr ph;

	if (exec_phdr(f, off, &ph))
		return -ENOENT;
	*vaddr = ph.p_vaddr + (off - ph.p_offset);
	return 0;
}

int elfsym_exec_segment(struct elfsym_file *f, uint64_t off, uint64_t *lo, uint64_t *hi)
{
	GElf_Phdr ph;

	if (exec_phdr(f, off, &ph))
		return -ENOENT;
	*lo = ph.p_offset;
	*hi = ph.p_offset + ph.p_filesz;
	return 0;
}
